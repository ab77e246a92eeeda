package io.diskmorph.storage;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.VarHandle;
import java.nio.file.Path;

/**
 * The few Linux calls that FileChannel does not offer, through
 * java.lang.foreign: lseek SEEK_DATA/SEEK_HOLE, fallocate, fstat st_blocks,
 * and open-file-description (OFD) byte-range locks, which are the locks QEMU
 * uses (block/file-posix.c). Linux x86_64/aarch64 layouts only; when the
 * calls are unavailable {@link #AVAILABLE} is false and callers fall back.
 */
final class NativeFs {
    private NativeFs() {
    }

    static final int O_RDONLY = 0;
    static final int O_RDWR = 2;
    static final int O_CLOEXEC = 0x80000;
    static final int SEEK_DATA = 3;
    static final int SEEK_HOLE = 4;
    static final int FALLOC_FL_KEEP_SIZE = 0x01;
    static final int FALLOC_FL_PUNCH_HOLE = 0x02;
    static final int F_OFD_GETLK = 36;
    static final int F_OFD_SETLK = 37;
    static final short F_RDLCK = 0;
    static final short F_WRLCK = 1;
    static final short F_UNLCK = 2;
    static final int ENXIO = 6;
    static final int EINVAL = 22;
    static final int EOPNOTSUPP = 95;
    static final int EAGAIN = 11;
    static final int EACCES = 13;

    private static final Linker LINKER = Linker.nativeLinker();
    private static final StructLayout ERRNO_LAYOUT = Linker.Option.captureStateLayout();
    private static final VarHandle ERRNO = ERRNO_LAYOUT.varHandle(MemoryLayout.PathElement.groupElement("errno"));

    /** struct flock on 64-bit Linux: short type, short whence, off_t start, off_t len, pid_t pid. */
    private static final StructLayout FLOCK = MemoryLayout.structLayout(
            ValueLayout.JAVA_SHORT.withName("l_type"),
            ValueLayout.JAVA_SHORT.withName("l_whence"),
            MemoryLayout.paddingLayout(4),
            ValueLayout.JAVA_LONG.withName("l_start"),
            ValueLayout.JAVA_LONG.withName("l_len"),
            ValueLayout.JAVA_INT.withName("l_pid"),
            MemoryLayout.paddingLayout(4));
    private static final long STAT_SIZE = 256; // larger than struct stat on every 64-bit Linux ABI
    private static final long ST_BLOCKS_OFFSET = 64; // the kernel's struct stat, x86_64 and aarch64 alike
    private static final int AT_FDCWD = -100;

    /** System call numbers: {openat, close, lseek, fstat, fcntl, fallocate}. */
    private static final long[] NR_X86_64 = {257, 3, 8, 5, 72, 285};
    private static final long[] NR_AARCH64 = {56, 57, 62, 80, 25, 47};
    private static final int OPENAT = 0, CLOSE = 1, LSEEK = 2, FSTAT = 3, FCNTL = 4, FALLOCATE = 5;

    static final boolean AVAILABLE;
    private static final long[] NR;
    /**
     * libc's syscall(2) with four arguments: one downcall handle for every
     * call. Each distinct native signature costs the JVM a generated stub
     * (about 7 ms, 30 ms for the first) at every start, so one shape for all
     * calls keeps start-up cheap.
     */
    private static final MethodHandle SYSCALL;

    static {
        MethodHandle syscall = null;
        long[] nr = null;
        try {
            String arch = System.getProperty("os.arch", "");
            if (System.getProperty("os.name", "").toLowerCase().contains("linux")) {
                nr = switch (arch) {
                    case "amd64", "x86_64" -> NR_X86_64;
                    case "aarch64" -> NR_AARCH64;
                    default -> null;
                };
            }
            if (nr != null) {
                syscall = LINKER.downcallHandle(LINKER.defaultLookup().find("syscall").orElseThrow(),
                        FunctionDescriptor.of(ValueLayout.JAVA_LONG, ValueLayout.JAVA_LONG, ValueLayout.JAVA_LONG,
                                ValueLayout.JAVA_LONG, ValueLayout.JAVA_LONG, ValueLayout.JAVA_LONG),
                        Linker.Option.captureCallState("errno"), Linker.Option.firstVariadicArg(1));
            }
        } catch (Throwable e) {
            syscall = null;
        }
        AVAILABLE = syscall != null;
        SYSCALL = syscall;
        NR = nr;
    }

    /** One system call; returns its result, or -1 with errno in {@code state}. */
    private static long call(MemorySegment state, int which, long a, long b, long c, long d) throws Throwable {
        return (long) SYSCALL.invokeExact(state, NR[which], a, b, c, d);
    }

    /** Thrown for a failed call; carries errno so callers can fall back on EINVAL/EOPNOTSUPP. */
    static final class ErrnoException extends IOException {
        final int errno;

        ErrnoException(String call, String target, int errno) {
            super(call + " failed on " + target + ": errno " + errno);
            this.errno = errno;
        }
    }

    private static int errno(MemorySegment state) {
        return (int) ERRNO.get(state, 0L);
    }

    static int open(Path path, boolean write) throws IOException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment state = arena.allocate(ERRNO_LAYOUT);
            MemorySegment name = arena.allocateFrom(path.toString());
            int fd = (int) call(state, OPENAT, AT_FDCWD, name.address(), (write ? O_RDWR : O_RDONLY) | O_CLOEXEC, 0);
            if (fd < 0) {
                throw new ErrnoException("open", path.toString(), errno(state));
            }
            return fd;
        } catch (IOException e) {
            throw e;
        } catch (Throwable t) {
            throw new IOException("open failed on " + path + ": " + t, t);
        }
    }

    static void close(int fd) {
        try (Arena arena = Arena.ofConfined()) {
            call(arena.allocate(ERRNO_LAYOUT), CLOSE, fd, 0, 0, 0);
        } catch (Throwable ignored) {
            // nothing to do: the descriptor is gone either way
        }
    }

    /** lseek(fd, offset, whence); returns -1 for ENXIO (no more data / offset past EOF). */
    static long lseek(int fd, long offset, int whence, String name) throws IOException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment state = arena.allocate(ERRNO_LAYOUT);
            long r = call(state, LSEEK, fd, offset, whence, 0);
            if (r < 0) {
                int e = errno(state);
                if (e == ENXIO) {
                    return -1;
                }
                throw new ErrnoException("lseek", name, e);
            }
            return r;
        } catch (IOException e) {
            throw e;
        } catch (Throwable t) {
            throw new IOException("lseek failed on " + name + ": " + t, t);
        }
    }

    static void fallocate(int fd, int mode, long offset, long length, String name) throws IOException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment state = arena.allocate(ERRNO_LAYOUT);
            long r = call(state, FALLOCATE, fd, mode, offset, length);
            if (r != 0) {
                throw new ErrnoException("fallocate", name, errno(state));
            }
        } catch (IOException e) {
            throw e;
        } catch (Throwable t) {
            throw new IOException("fallocate failed on " + name + ": " + t, t);
        }
    }

    /** st_blocks * 512 of an open descriptor. */
    static long allocatedBytes(int fd, String name) throws IOException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment state = arena.allocate(ERRNO_LAYOUT);
            MemorySegment st = arena.allocate(STAT_SIZE, 8);
            long r = call(state, FSTAT, fd, st.address(), 0, 0);
            if (r != 0) {
                throw new ErrnoException("fstat", name, errno(state));
            }
            return st.get(ValueLayout.JAVA_LONG, ST_BLOCKS_OFFSET) * 512;
        } catch (IOException e) {
            throw e;
        } catch (Throwable t) {
            throw new IOException("fstat failed on " + name + ": " + t, t);
        }
    }

    /**
     * F_OFD_SETLK (non-blocking) of one byte range; type F_RDLCK, F_WRLCK or
     * F_UNLCK. Returns false when another holder conflicts.
     */
    static boolean setLock(int fd, short type, long start, long len, String name) throws IOException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment state = arena.allocate(ERRNO_LAYOUT);
            MemorySegment fl = flock(arena, type, start, len);
            long r = call(state, FCNTL, fd, F_OFD_SETLK, fl.address(), 0);
            if (r != 0) {
                int e = errno(state);
                if (e == EAGAIN || e == EACCES) {
                    return false;
                }
                throw new ErrnoException("fcntl(F_OFD_SETLK)", name, e);
            }
            return true;
        } catch (IOException e) {
            throw e;
        } catch (Throwable t) {
            throw new IOException("fcntl failed on " + name + ": " + t, t);
        }
    }

    /**
     * F_OFD_GETLK: would a lock of {@code type} on the range conflict with a
     * lock held through another open file description? Our own locks never
     * conflict with themselves.
     */
    static boolean wouldConflict(int fd, short type, long start, long len, String name) throws IOException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment state = arena.allocate(ERRNO_LAYOUT);
            MemorySegment fl = flock(arena, type, start, len);
            long r = call(state, FCNTL, fd, F_OFD_GETLK, fl.address(), 0);
            if (r != 0) {
                throw new ErrnoException("fcntl(F_OFD_GETLK)", name, errno(state));
            }
            return fl.get(ValueLayout.JAVA_SHORT, 0) != F_UNLCK;
        } catch (IOException e) {
            throw e;
        } catch (Throwable t) {
            throw new IOException("fcntl failed on " + name + ": " + t, t);
        }
    }

    private static MemorySegment flock(Arena arena, short type, long start, long len) {
        MemorySegment fl = arena.allocate(FLOCK);
        fl.set(ValueLayout.JAVA_SHORT, 0, type);
        fl.set(ValueLayout.JAVA_SHORT, 2, (short) 0); // SEEK_SET
        fl.set(ValueLayout.JAVA_LONG, 8, start);
        fl.set(ValueLayout.JAVA_LONG, 16, len);
        fl.set(ValueLayout.JAVA_INT, 24, 0); // l_pid must be 0 for OFD locks
        return fl;
    }
}
