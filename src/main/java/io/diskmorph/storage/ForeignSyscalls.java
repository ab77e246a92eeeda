package io.diskmorph.storage;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.VarHandle;

/**
 * {@link Syscalls} through java.lang.foreign: libc's syscall(2), with the
 * system call numbers of Linux x86_64 and aarch64, for when the JNI shim is
 * not built.
 */
final class ForeignSyscalls implements Syscalls {
    /**
     * System call numbers: {openat, close, lseek, fstat, fcntl, fallocate,
     * fstatfs, ftruncate, sync_file_range, fadvise64}.
     */
    private static final long[] NR_X86_64 = {257, 3, 8, 5, 72, 285, 138, 77, 277, 221};
    private static final long[] NR_AARCH64 = {56, 57, 62, 80, 25, 47, 44, 46, 84, 223};
    private static final int OPENAT = 0, CLOSE = 1, LSEEK = 2, FSTAT = 3, FCNTL = 4, FALLOCATE = 5, FSTATFS = 6,
            FTRUNCATE = 7, SYNC_FILE_RANGE = 8, FADVISE = 9;
    private static final long STATFS_SIZE = 256; // larger than struct statfs; f_type is its first field
    private static final int AT_FDCWD = -100;
    private static final int O_CLOEXEC = 0x80000;
    private static final long STAT_SIZE = 256; // larger than struct stat on every 64-bit Linux ABI
    private static final long ST_BLOCKS_OFFSET = 64; // the kernel's struct stat, x86_64 and aarch64 alike
    /** struct flock on 64-bit Linux: short type, short whence, off_t start, off_t len, pid_t pid. */
    private static final long FLOCK_SIZE = 32;

    private final long[] nr;
    private final StructLayout errnoLayout;
    private final VarHandle errno;
    /**
     * syscall(2) with four arguments: one downcall handle for every call.
     * Each distinct native signature costs the JVM a generated stub (about
     * 7 ms, 30 ms for the first) at every start, so one shape serves all.
     */
    private final MethodHandle syscall;

    /** The calls on this platform, or null (not Linux x86_64/aarch64, or linking failed). */
    static ForeignSyscalls link() {
        if (!System.getProperty("os.name", "").toLowerCase().contains("linux")) {
            return null;
        }
        long[] nr = switch (System.getProperty("os.arch", "")) {
            case "amd64", "x86_64" -> NR_X86_64;
            case "aarch64" -> NR_AARCH64;
            default -> null;
        };
        if (nr == null) {
            return null;
        }
        try {
            return new ForeignSyscalls(nr);
        } catch (Throwable e) {
            return null;
        }
    }

    private ForeignSyscalls(long[] nr) {
        this.nr = nr;
        Linker linker = Linker.nativeLinker();
        errnoLayout = Linker.Option.captureStateLayout();
        errno = errnoLayout.varHandle(MemoryLayout.PathElement.groupElement("errno"));
        syscall = linker.downcallHandle(linker.defaultLookup().find("syscall").orElseThrow(),
                FunctionDescriptor.of(ValueLayout.JAVA_LONG, ValueLayout.JAVA_LONG, ValueLayout.JAVA_LONG,
                        ValueLayout.JAVA_LONG, ValueLayout.JAVA_LONG, ValueLayout.JAVA_LONG),
                Linker.Option.captureCallState("errno"), Linker.Option.firstVariadicArg(1));
    }

    private long call(Arena arena, int which, long a, long b, long c, long d) {
        MemorySegment state = arena.allocate(errnoLayout);
        long r;
        try {
            r = (long) syscall.invokeExact(state, nr[which], a, b, c, d);
        } catch (Throwable t) {
            throw new IllegalStateException("native call failed: " + t, t);
        }
        return r == -1 ? -(long) (int) errno.get(state, 0L) : r;
    }

    @Override
    public long open(String path, int flags) {
        try (Arena arena = Arena.ofConfined()) {
            return call(arena, OPENAT, AT_FDCWD, arena.allocateFrom(path).address(), flags | O_CLOEXEC, 0);
        }
    }

    @Override
    public long close(int fd) {
        try (Arena arena = Arena.ofConfined()) {
            return call(arena, CLOSE, fd, 0, 0, 0);
        }
    }

    @Override
    public long lseek(int fd, long offset, int whence) {
        try (Arena arena = Arena.ofConfined()) {
            return call(arena, LSEEK, fd, offset, whence, 0);
        }
    }

    @Override
    public long fallocate(int fd, int mode, long offset, long length) {
        try (Arena arena = Arena.ofConfined()) {
            return call(arena, FALLOCATE, fd, mode, offset, length);
        }
    }

    @Override
    public long truncate(int fd, long size) {
        try (Arena arena = Arena.ofConfined()) {
            return call(arena, FTRUNCATE, fd, size, 0, 0);
        }
    }

    @Override
    public long syncFileRange(int fd, long offset, long length, int flags) {
        try (Arena arena = Arena.ofConfined()) {
            return call(arena, SYNC_FILE_RANGE, fd, offset, length, flags);
        }
    }

    /** The raw fadvise64 call sets errno like the others (libc's posix_fadvise returns it instead). */
    @Override
    public long fadvise(int fd, long offset, long length, int advice) {
        try (Arena arena = Arena.ofConfined()) {
            return call(arena, FADVISE, fd, offset, length, advice);
        }
    }

    @Override
    public long blocks(int fd) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment st = arena.allocate(STAT_SIZE, 8);
            long r = call(arena, FSTAT, fd, st.address(), 0, 0);
            return r != 0 ? r : st.get(ValueLayout.JAVA_LONG, ST_BLOCKS_OFFSET);
        }
    }

    @Override
    public long filesystemType(int fd) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment st = arena.allocate(STATFS_SIZE, 8);
            long r = call(arena, FSTATFS, fd, st.address(), 0, 0);
            return r != 0 ? r : st.get(ValueLayout.JAVA_LONG, 0);
        }
    }

    /**
     * statx takes five arguments where the one downcall shape has four (a
     * second shape would cost every fallback run its stub): no birth time
     * here, so file identity rests on the inode and the content.
     */
    @Override
    public long birthTime(String path) {
        return -NativeFs.ENODATA;
    }

    @Override
    public long ofdLock(int fd, int cmd, short type, long start, long length) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment fl = arena.allocate(FLOCK_SIZE, 8); // zeroed: l_pid must be 0 for OFD locks
            fl.set(ValueLayout.JAVA_SHORT, 0, type);
            fl.set(ValueLayout.JAVA_SHORT, 2, (short) 0); // SEEK_SET
            fl.set(ValueLayout.JAVA_LONG, 8, start);
            fl.set(ValueLayout.JAVA_LONG, 16, length);
            long r = call(arena, FCNTL, fd, cmd, fl.address(), 0);
            if (r != 0 || cmd != NativeFs.F_OFD_GETLK) {
                return r;
            }
            return fl.get(ValueLayout.JAVA_SHORT, 0);
        }
    }
}
