/*
 * diskmorph's JNI shim: the few Linux calls FileChannel lacks, for
 * io.diskmorph.storage.JniSyscalls (see the Syscalls interface there).
 *
 * With java.lang.foreign the same calls cost 40-130 ms at every start (a
 * downcall stub, method handles and classes spun at run time, and the memory
 * API's own set-up), which a copy from a raw or qcow2 source waited for; JNI
 * methods bind in well under a millisecond. Without this library the Java
 * side falls back to java.lang.foreign.
 *
 * Every function returns its call's result, or -errno on failure (the
 * kernel's convention), so Java needs no errno capture.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <jni.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#define RESULT(r) ((r) == -1 ? -(jlong) errno : (jlong) (r))

/* path: the name's bytes, NUL-terminated by the caller */
JNIEXPORT jlong JNICALL Java_io_diskmorph_storage_JniSyscalls_open0(JNIEnv *env, jclass cls, jbyteArray path,
                                                                    jint flags) {
    (void) cls;
    jbyte *name = (*env)->GetByteArrayElements(env, path, NULL);
    if (name == NULL) {
        return -ENOMEM;
    }
    int fd = openat(AT_FDCWD, (const char *) name, flags | O_CLOEXEC);
    jlong r = RESULT(fd);
    (*env)->ReleaseByteArrayElements(env, path, name, JNI_ABORT);
    return r;
}

JNIEXPORT jlong JNICALL Java_io_diskmorph_storage_JniSyscalls_close0(JNIEnv *env, jclass cls, jint fd) {
    (void) env;
    (void) cls;
    int r = close(fd);
    return RESULT(r);
}

JNIEXPORT jlong JNICALL Java_io_diskmorph_storage_JniSyscalls_lseek0(JNIEnv *env, jclass cls, jint fd, jlong offset,
                                                                     jint whence) {
    (void) env;
    (void) cls;
    off_t r = lseek(fd, (off_t) offset, whence);
    return RESULT(r);
}

JNIEXPORT jlong JNICALL Java_io_diskmorph_storage_JniSyscalls_fallocate0(JNIEnv *env, jclass cls, jint fd, jint mode,
                                                                         jlong offset, jlong length) {
    (void) env;
    (void) cls;
    int r = fallocate(fd, mode, (off_t) offset, (off_t) length);
    return RESULT(r);
}

/* ftruncate, even to the current size (which frees blocks allocated past the end; FileChannel skips that) */
JNIEXPORT jlong JNICALL Java_io_diskmorph_storage_JniSyscalls_truncate0(JNIEnv *env, jclass cls, jint fd, jlong size) {
    (void) env;
    (void) cls;
    int r = ftruncate(fd, (off_t) size);
    return RESULT(r);
}

/* the page size: mmap offsets and madvise ranges are multiples of it (4 KiB, 16 KiB or 64 KiB) */
JNIEXPORT jlong JNICALL Java_io_diskmorph_storage_JniSyscalls_pageSize0(JNIEnv *env, jclass cls) {
    (void) env;
    (void) cls;
    long r = sysconf(_SC_PAGESIZE);
    return RESULT(r);
}

/* mmap(NULL, length, PROT_READ, MAP_SHARED, fd, offset): the address, or -errno */
JNIEXPORT jlong JNICALL Java_io_diskmorph_storage_JniSyscalls_mapReadOnly0(JNIEnv *env, jclass cls, jint fd,
                                                                           jlong offset, jlong length) {
    (void) env;
    (void) cls;
    void *p = mmap(NULL, (size_t) length, PROT_READ, MAP_SHARED, fd, (off_t) offset);
    return p == MAP_FAILED ? -(jlong) errno : (jlong) (intptr_t) p;
}

JNIEXPORT jlong JNICALL Java_io_diskmorph_storage_JniSyscalls_unmap0(JNIEnv *env, jclass cls, jlong address,
                                                                     jlong length) {
    (void) env;
    (void) cls;
    int r = munmap((void *) (intptr_t) address, (size_t) length);
    return RESULT(r);
}

/* madvise(MADV_DONTNEED): the pages leave this process's mapping, the page cache keeps them */
JNIEXPORT jlong JNICALL Java_io_diskmorph_storage_JniSyscalls_dropPages0(JNIEnv *env, jclass cls, jlong address,
                                                                         jlong length) {
    (void) env;
    (void) cls;
    int r = madvise((void *) (intptr_t) address, (size_t) length, MADV_DONTNEED);
    return RESULT(r);
}

/* a direct buffer over [address, address + length) of a mapping (no cleaner: unmap0 ends it) */
JNIEXPORT jobject JNICALL Java_io_diskmorph_storage_JniSyscalls_buffer0(JNIEnv *env, jclass cls, jlong address,
                                                                        jlong length) {
    (void) cls;
    return (*env)->NewDirectByteBuffer(env, (void *) (intptr_t) address, length);
}

/* st_blocks (512-byte units) */
JNIEXPORT jlong JNICALL Java_io_diskmorph_storage_JniSyscalls_blocks0(JNIEnv *env, jclass cls, jint fd) {
    (void) env;
    (void) cls;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        return -(jlong) errno;
    }
    return (jlong) st.st_blocks;
}

/* fstatfs's f_type: the filesystem's magic number */
JNIEXPORT jlong JNICALL Java_io_diskmorph_storage_JniSyscalls_filesystemType0(JNIEnv *env, jclass cls, jint fd) {
    (void) env;
    (void) cls;
    struct statfs st;
    if (fstatfs(fd, &st) != 0) {
        return -(jlong) errno;
    }
    return (jlong) st.f_type;
}

/* F_OFD_SETLK: 0; F_OFD_GETLK: the l_type found (F_UNLCK when nothing conflicts) */
JNIEXPORT jlong JNICALL Java_io_diskmorph_storage_JniSyscalls_ofdLock0(JNIEnv *env, jclass cls, jint fd, jint cmd,
                                                                       jint type, jlong start, jlong len) {
    (void) env;
    (void) cls;
    struct flock fl;
    memset(&fl, 0, sizeof fl); /* l_pid must be 0 for OFD locks */
    fl.l_type = (short) type;
    fl.l_whence = SEEK_SET;
    fl.l_start = (off_t) start;
    fl.l_len = (off_t) len;
    if (fcntl(fd, cmd, &fl) != 0) {
        return -(jlong) errno;
    }
    return cmd == F_OFD_GETLK ? (jlong) fl.l_type : 0;
}

/* statx's birth time in nanoseconds, -ENODATA when the file system keeps none (path NUL-terminated) */
JNIEXPORT jlong JNICALL Java_io_diskmorph_storage_JniSyscalls_birthTime0(JNIEnv *env, jclass cls, jbyteArray path) {
    (void) cls;
    jbyte *name = (*env)->GetByteArrayElements(env, path, NULL);
    if (name == NULL) {
        return -ENOMEM;
    }
    struct statx stx;
    int r = statx(AT_FDCWD, (const char *) name, 0, STATX_BTIME, &stx);
    int err = errno;
    (*env)->ReleaseByteArrayElements(env, path, name, JNI_ABORT);
    if (r != 0) {
        return -(jlong) err;
    }
    if (!(stx.stx_mask & STATX_BTIME)) {
        return -ENODATA;
    }
    return (jlong) stx.stx_btime.tv_sec * 1000000000LL + (jlong) stx.stx_btime.tv_nsec;
}

/* sync_file_range(2): starts (SYNC_FILE_RANGE_WRITE) or waits for (WAIT_BEFORE | WRITE | WAIT_AFTER) the writeback of a range */
JNIEXPORT jlong JNICALL Java_io_diskmorph_storage_JniSyscalls_syncFileRange0(JNIEnv *env, jclass cls, jint fd,
                                                                             jlong offset, jlong length, jint flags) {
    (void) env;
    (void) cls;
    int r = sync_file_range(fd, (off_t) offset, (off_t) length, (unsigned int) flags);
    return RESULT(r);
}

/* posix_fadvise(2) returns the error number itself instead of setting errno */
JNIEXPORT jlong JNICALL Java_io_diskmorph_storage_JniSyscalls_fadvise0(JNIEnv *env, jclass cls, jint fd, jlong offset,
                                                                       jlong length, jint advice) {
    (void) env;
    (void) cls;
    int r = posix_fadvise(fd, (off_t) offset, (off_t) length, advice);
    return r == 0 ? 0 : -(jlong) r;
}

/* CPU time of the calling thread in nanoseconds (CLOCK_THREAD_CPUTIME_ID): a write's cost without the time others ran */
JNIEXPORT jlong JNICALL Java_io_diskmorph_storage_JniSyscalls_threadCpuNanos0(JNIEnv *env, jclass cls) {
    (void) env;
    (void) cls;
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0) {
        return -(jlong) errno;
    }
    return (jlong) ts.tv_sec * 1000000000LL + (jlong) ts.tv_nsec;
}
