package io.diskmorph.storage;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * {@link Syscalls} through the JNI shim {@code libdiskmorph.so}
 * (src/main/native; the build makes it when a C compiler is present).
 */
final class JniSyscalls implements Syscalls {
    /**
     * Loads the shim: {@code -Ddiskmorph.native.lib=PATH}, else
     * {@code native/libdiskmorph.so} beside the jar or the classes directory
     * (both sit in target/); {@code -Ddiskmorph.native=foreign} skips it.
     * Returns null when there is none or it does not load (another
     * architecture, a stale build, native access denied).
     */
    static JniSyscalls load() {
        return Holder.CALLS;
    }

    /** Whether the shim is loaded (loading it now if need be: about a millisecond). */
    static boolean loaded() {
        return Holder.CALLS != null;
    }

    private static final class Holder {
        static final JniSyscalls CALLS = loadLibrary();
    }

    private static JniSyscalls loadLibrary() {
        if ("foreign".equals(System.getProperty("diskmorph.native"))) {
            return null;
        }
        try {
            String lib = System.getProperty("diskmorph.native.lib");
            Path path;
            if (lib != null) {
                path = Path.of(lib).toAbsolutePath();
            } else {
                var source = JniSyscalls.class.getProtectionDomain().getCodeSource();
                if (source == null) {
                    return null;
                }
                path = Path.of(source.getLocation().toURI()).getParent().resolve("native").resolve("libdiskmorph.so");
            }
            if (!Files.isRegularFile(path)) {
                return null;
            }
            System.load(path.toString());
            JniSyscalls calls = new JniSyscalls();
            // every function bound, and failing the way the Java side expects
            return calls.lseek(-1, 0, 0) == -NativeFs.EBADF && calls.blocks(-1) == -NativeFs.EBADF
                    && calls.close(-1) == -NativeFs.EBADF && calls.filesystemType(-1) == -NativeFs.EBADF && calls.fallocate(-1, 0, 0, 1) == -NativeFs.EBADF
                    && calls.truncate(-1, 0) == -NativeFs.EBADF
                    && optional(calls.syncFileRange(-1, 0, 1, NativeFs.SYNC_FILE_RANGE_WRITE))
                    && optional(calls.fadvise(-1, 0, 1, NativeFs.POSIX_FADV_DONTNEED))
                    && mapReadOnly0(-1, 0, 4096) == -NativeFs.EBADF && unmap0(0, 0) == -NativeFs.EINVAL
                    && dropPages0(0, 0) == 0 && buffer0(0, 0) != null && pageSize0() > 0 && threadCpuNanos0() >= 0
                    && calls.ofdLock(-1, NativeFs.F_OFD_GETLK, NativeFs.F_WRLCK, 0, 1) == -NativeFs.EBADF
                    && calls.open("", NativeFs.O_RDONLY) == -NativeFs.ENOENT
                    && calls.birthTime("") == -NativeFs.ENOENT ? calls : null;
        } catch (Throwable e) {
            return null;
        }
    }

    private JniSyscalls() {
    }

    /**
     * A call the shim can do without (drop-behind asks for it again before
     * use): bound and failing on a bad descriptor, or refused by a seccomp
     * filter (ENOSYS, EPERM).
     */
    private static boolean optional(long r) {
        return r == -NativeFs.EBADF || r == -NativeFs.ENOSYS || r == -NativeFs.EPERM;
    }

    @Override
    public long open(String path, int flags) {
        return open0(nulTerminated(path), flags);
    }

    @Override
    public long birthTime(String path) {
        return birthTime0(nulTerminated(path));
    }

    private static byte[] nulTerminated(String path) {
        byte[] name = path.getBytes(StandardCharsets.UTF_8);
        byte[] z = new byte[name.length + 1];
        System.arraycopy(name, 0, z, 0, name.length);
        return z;
    }

    @Override
    public long close(int fd) {
        return close0(fd);
    }

    @Override
    public long lseek(int fd, long offset, int whence) {
        return lseek0(fd, offset, whence);
    }

    @Override
    public long fallocate(int fd, int mode, long offset, long length) {
        return fallocate0(fd, mode, offset, length);
    }

    @Override
    public long truncate(int fd, long size) {
        return truncate0(fd, size);
    }

    @Override
    public long syncFileRange(int fd, long offset, long length, int flags) {
        return syncFileRange0(fd, offset, length, flags);
    }

    @Override
    public long fadvise(int fd, long offset, long length, int advice) {
        return fadvise0(fd, offset, length, advice);
    }

    @Override
    public long blocks(int fd) {
        return blocks0(fd);
    }

    @Override
    public long filesystemType(int fd) {
        return filesystemType0(fd);
    }

    @Override
    public long ofdLock(int fd, int cmd, short type, long start, long length) {
        return ofdLock0(fd, cmd, type, start, length);
    }

    private static native long open0(byte[] nulTerminatedPath, int flags);

    private static native long close0(int fd);

    private static native long lseek0(int fd, long offset, int whence);

    private static native long fallocate0(int fd, int mode, long offset, long length);

    private static native long truncate0(int fd, long size);

    private static native long syncFileRange0(int fd, long offset, long length, int flags);

    private static native long fadvise0(int fd, long offset, long length, int advice);

    /** sysconf(_SC_PAGESIZE). */
    static native long pageSize0();

    /** CPU time of the calling thread, nanoseconds (clock_gettime CLOCK_THREAD_CPUTIME_ID). */
    static native long threadCpuNanos0();

    /** mmap PROT_READ MAP_SHARED: the address, or -errno. */
    static native long mapReadOnly0(int fd, long offset, long length);

    /** munmap: 0 or -errno. */
    static native long unmap0(long address, long length);

    /** madvise MADV_DONTNEED: 0 or -errno. */
    static native long dropPages0(long address, long length);

    /** A direct buffer over memory of a mapping (no cleaner). */
    static native java.nio.ByteBuffer buffer0(long address, long length);

    private static native long blocks0(int fd);

    private static native long filesystemType0(int fd);

    private static native long ofdLock0(int fd, int cmd, int type, long start, long length);

    private static native long birthTime0(byte[] nulTerminatedPath);
}
