package io.diskmorph.storage;

import java.io.IOException;
import java.nio.file.Path;

/**
 * The few Linux calls that FileChannel does not offer: lseek
 * SEEK_DATA/SEEK_HOLE, fallocate, fstat st_blocks, and open-file-description
 * (OFD) byte-range locks, which are the locks QEMU uses
 * (block/file-posix.c). They reach the kernel through the project's JNI shim
 * when it was built, else through java.lang.foreign ({@link Syscalls}); when
 * neither works {@link #AVAILABLE} is false and callers fall back. This
 * class turns the calls' -errno results into answers and exceptions.
 */
final class NativeFs {
    private NativeFs() {
    }

    static final int O_RDONLY = 0;
    static final int O_RDWR = 2;
    static final int SEEK_DATA = 3;
    static final int SEEK_HOLE = 4;
    static final int FALLOC_FL_KEEP_SIZE = 0x01;
    static final int FALLOC_FL_PUNCH_HOLE = 0x02;
    static final int SYNC_FILE_RANGE_WAIT_BEFORE = 1;
    static final int SYNC_FILE_RANGE_WRITE = 2;
    static final int SYNC_FILE_RANGE_WAIT_AFTER = 4;
    /** Linux's value on x86_64 and aarch64 (s390x differs; ForeignSyscalls serves only these two). */
    static final int POSIX_FADV_DONTNEED = 4;
    static final int F_OFD_GETLK = 36;
    static final int F_OFD_SETLK = 37;
    static final short F_RDLCK = 0;
    static final short F_WRLCK = 1;
    static final short F_UNLCK = 2;
    static final int ENOENT = 2;
    static final int EPERM = 1;
    static final int ENXIO = 6;
    static final int EBADF = 9;
    static final int EAGAIN = 11;
    static final int EACCES = 13;
    static final int EINVAL = 22;
    static final int ENOSPC = 28;
    static final int ENOSYS = 38;
    static final int EOPNOTSUPP = 95;
    static final int EDQUOT = 122;
    static final int ENODATA = 61;

    /** The calls, or null when this platform has neither way. */
    static final Syscalls CALLS = choose();
    static final boolean AVAILABLE = CALLS != null;

    private static Syscalls choose() {
        Syscalls jni = JniSyscalls.load();
        return jni != null ? jni : ForeignSyscalls.link();
    }

    /** Thrown for a failed call; carries errno so callers can fall back on EINVAL/EOPNOTSUPP. */
    static final class ErrnoException extends IOException {
        final int errno;

        ErrnoException(String call, String target, int errno) {
            super(call + " failed on " + target + ": errno " + errno);
            this.errno = errno;
        }
    }

    static int open(Path path, boolean write) throws IOException {
        long fd = CALLS.open(path.toString(), write ? O_RDWR : O_RDONLY);
        if (fd < 0) {
            throw new ErrnoException("open", path.toString(), (int) -fd);
        }
        return (int) fd;
    }

    /**
     * The file's birth time in nanoseconds, or {@link FileIdentity#UNKNOWN}
     * when the file system records none or the native calls are missing.
     */
    static long birthTime(Path path) throws IOException {
        if (!AVAILABLE) {
            return FileIdentity.UNKNOWN;
        }
        long t = CALLS.birthTime(path.toString());
        if (t == -ENODATA || t == -EINVAL || t == -ENOSYS /* a kernel without statx */) {
            return FileIdentity.UNKNOWN;
        }
        if (t < 0 && t > -4096) {
            throw new ErrnoException("statx", path.toString(), (int) -t);
        }
        return t;
    }

    static void close(int fd) {
        CALLS.close(fd); // nothing to do on failure: the descriptor is gone either way
    }

    /** lseek(fd, offset, whence); returns -1 for ENXIO (no more data / offset past EOF). */
    static long lseek(int fd, long offset, int whence, String name) throws IOException {
        long r = CALLS.lseek(fd, offset, whence);
        if (r == -ENXIO) {
            return -1;
        }
        if (r < 0) {
            throw new ErrnoException("lseek", name, (int) -r);
        }
        return r;
    }

    static void fallocate(int fd, int mode, long offset, long length, String name) throws IOException {
        long r = CALLS.fallocate(fd, mode, offset, length);
        if (r != 0) {
            throw new ErrnoException("fallocate", name, (int) -r);
        }
    }

    /**
     * Whether sync_file_range works on this descriptor: without flags it
     * only checks its arguments (ESPIPE on a pipe, ENOSYS or EPERM where a
     * kernel or a seccomp filter lacks it).
     */
    static boolean syncFileRangeWorks(int fd) {
        return CALLS.syncFileRange(fd, 0, 0, 0) == 0;
    }

    /**
     * Starts the writeback of the range's dirty pages (sync_file_range
     * SYNC_FILE_RANGE_WRITE). A hint: it fails only for reasons that the
     * wait ({@link #waitAndDrop}) reports, or passing ones (ENOMEM), so its
     * result is not looked at.
     */
    static void startWriteback(int fd, long offset, long length) {
        CALLS.syncFileRange(fd, offset, length, SYNC_FILE_RANGE_WRITE);
    }

    /**
     * Waits until the range's pages are written (starting what is not yet
     * under way), then asks the kernel to drop them from the page cache
     * (POSIX_FADV_DONTNEED: clean pages leave; dirty ones, none here, it
     * would only start writing). Any error of the wait is the file's
     * writeback error: the data did not reach the disk.
     */
    static void waitAndDrop(int fd, long offset, long length, String name) throws IOException {
        long r = CALLS.syncFileRange(fd, offset, length,
                SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER);
        if (r != 0) {
            throw new ErrnoException("sync_file_range", name, (int) -r);
        }
        CALLS.fadvise(fd, offset, length, POSIX_FADV_DONTNEED); // advice: nothing to do if it fails
    }

    static void truncate(int fd, long size, String name) throws IOException {
        long r = CALLS.truncate(fd, size);
        if (r != 0) {
            throw new ErrnoException("ftruncate", name, (int) -r);
        }
    }

    /** st_blocks * 512 of an open descriptor. */
    static long allocatedBytes(int fd, String name) throws IOException {
        long r = CALLS.blocks(fd);
        if (r < 0) {
            throw new ErrnoException("fstat", name, (int) -r);
        }
        return r * 512;
    }

    /** ext2, ext3 and ext4 share this fstatfs magic number. */
    static final long EXT4_SUPER_MAGIC = 0xEF53;

    /** The filesystem's fstatfs magic number. */
    static long filesystemType(int fd, String name) throws IOException {
        long r = CALLS.filesystemType(fd);
        if (r < 0) {
            throw new ErrnoException("fstatfs", name, (int) -r);
        }
        return r;
    }

    /**
     * F_OFD_SETLK (non-blocking) of one byte range; type F_RDLCK, F_WRLCK or
     * F_UNLCK. Returns false when another holder conflicts.
     */
    static boolean setLock(int fd, short type, long start, long len, String name) throws IOException {
        long r = CALLS.ofdLock(fd, F_OFD_SETLK, type, start, len);
        if (r == -EAGAIN || r == -EACCES) {
            return false;
        }
        if (r != 0) {
            throw new ErrnoException("fcntl(F_OFD_SETLK)", name, (int) -r);
        }
        return true;
    }

    /**
     * F_OFD_GETLK: would a lock of {@code type} on the range conflict with a
     * lock held through another open file description? Our own locks never
     * conflict with themselves.
     */
    static boolean wouldConflict(int fd, short type, long start, long len, String name) throws IOException {
        long r = CALLS.ofdLock(fd, F_OFD_GETLK, type, start, len);
        if (r < 0) {
            throw new ErrnoException("fcntl(F_OFD_GETLK)", name, (int) -r);
        }
        return r != F_UNLCK;
    }
}
