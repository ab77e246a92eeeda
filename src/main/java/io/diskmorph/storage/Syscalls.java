package io.diskmorph.storage;

/**
 * The Linux calls {@link NativeFs} needs and FileChannel lacks, as raw
 * calls: each returns the call's result, or -errno when it fails (the
 * kernel's own convention). Two implementations: {@link JniSyscalls} (the
 * project's JNI shim, bound in well under a millisecond) and
 * {@link ForeignSyscalls} (java.lang.foreign, no native build needed, but
 * 40-130 ms of linking and set-up at a process's first call).
 */
interface Syscalls {
    /** openat(AT_FDCWD, path, flags | O_CLOEXEC): a descriptor. */
    long open(String path, int flags);

    long close(int fd);

    long lseek(int fd, long offset, int whence);

    long fallocate(int fd, int mode, long offset, long length);

    /** ftruncate(2), to the current size too (which releases blocks allocated past the end). */
    long truncate(int fd, long size);

    /** fstat's st_blocks (512-byte units). */
    long blocks(int fd);

    /** fstatfs's f_type: the filesystem's magic number. */
    long filesystemType(int fd);

    /**
     * fcntl with F_OFD_SETLK (returns 0) or F_OFD_GETLK (returns the lock
     * type found, F_UNLCK when nothing conflicts) for one byte range from
     * the start of the file.
     */
    long ofdLock(int fd, int cmd, short type, long start, long length);

    /**
     * sync_file_range(2) on [offset, offset + length): flags
     * SYNC_FILE_RANGE_WRITE starts the writeback of the range's dirty pages;
     * with WAIT_BEFORE and WAIT_AFTER too it returns once they are written
     * (file data only: no metadata, no disk cache flush).
     */
    long syncFileRange(int fd, long offset, long length, int flags);

    /** posix_fadvise(2); with POSIX_FADV_DONTNEED the range's clean pages leave the page cache. */
    long fadvise(int fd, long offset, long length, int advice);

    /**
     * The birth time of the file at {@code path} (symbolic links followed),
     * in nanoseconds since the epoch, from statx(2); -ENODATA when the file
     * system records none.
     */
    long birthTime(String path);
}
