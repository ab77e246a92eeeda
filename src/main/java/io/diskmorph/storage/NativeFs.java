package io.diskmorph.storage;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.foreign.SymbolLookup;
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
    private static final long ST_BLOCKS_OFFSET_X86_64 = 64;
    private static final long ST_BLOCKS_OFFSET_AARCH64 = 64;

    static final boolean AVAILABLE;
    private static final MethodHandle OPEN;
    private static final MethodHandle CLOSE;
    private static final MethodHandle LSEEK;
    private static final MethodHandle FALLOCATE;
    private static final MethodHandle FCNTL_LOCK;
    private static final MethodHandle FSTAT;

    static {
        MethodHandle open = null, close = null, lseek = null, fallocate = null, fcntl = null, fstat = null;
        boolean ok = false;
        try {
            String arch = System.getProperty("os.arch", "");
            if (System.getProperty("os.name", "").toLowerCase().contains("linux")
                    && (arch.equals("amd64") || arch.equals("x86_64") || arch.equals("aarch64"))) {
                SymbolLookup libc = LINKER.defaultLookup();
                Linker.Option errno = Linker.Option.captureCallState("errno");
                open = LINKER.downcallHandle(libc.find("open").orElseThrow(),
                        FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.ADDRESS, ValueLayout.JAVA_INT,
                                ValueLayout.JAVA_INT),
                        errno, Linker.Option.firstVariadicArg(2));
                close = LINKER.downcallHandle(libc.find("close").orElseThrow(),
                        FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT));
                lseek = LINKER.downcallHandle(libc.find("lseek").orElseThrow(),
                        FunctionDescriptor.of(ValueLayout.JAVA_LONG, ValueLayout.JAVA_INT, ValueLayout.JAVA_LONG,
                                ValueLayout.JAVA_INT), errno);
                fallocate = LINKER.downcallHandle(libc.find("fallocate").orElseThrow(),
                        FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.JAVA_INT,
                                ValueLayout.JAVA_LONG, ValueLayout.JAVA_LONG), errno);
                fcntl = LINKER.downcallHandle(libc.find("fcntl").orElseThrow(),
                        FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.JAVA_INT,
                                ValueLayout.ADDRESS), errno, Linker.Option.firstVariadicArg(2));
                fstat = LINKER.downcallHandle(libc.find("fstat").orElseThrow(),
                        FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.ADDRESS), errno);
                ok = true;
            }
        } catch (Throwable e) {
            ok = false;
        }
        AVAILABLE = ok;
        OPEN = open;
        CLOSE = close;
        LSEEK = lseek;
        FALLOCATE = fallocate;
        FCNTL_LOCK = fcntl;
        FSTAT = fstat;
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
            int fd = (int) OPEN.invokeExact(state, name, (write ? O_RDWR : O_RDONLY) | O_CLOEXEC, 0);
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
        try {
            int ignored = (int) CLOSE.invokeExact(fd);
        } catch (Throwable ignored) {
            // nothing to do: the descriptor is gone either way
        }
    }

    /** lseek(fd, offset, whence); returns -1 for ENXIO (no more data / offset past EOF). */
    static long lseek(int fd, long offset, int whence, String name) throws IOException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment state = arena.allocate(ERRNO_LAYOUT);
            long r = (long) LSEEK.invokeExact(state, fd, offset, whence);
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
            int r = (int) FALLOCATE.invokeExact(state, fd, mode, offset, length);
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
            int r = (int) FSTAT.invokeExact(state, fd, st);
            if (r != 0) {
                throw new ErrnoException("fstat", name, errno(state));
            }
            long off = System.getProperty("os.arch").equals("aarch64") ? ST_BLOCKS_OFFSET_AARCH64
                    : ST_BLOCKS_OFFSET_X86_64;
            return st.get(ValueLayout.JAVA_LONG, off) * 512;
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
            int r = (int) FCNTL_LOCK.invokeExact(state, fd, F_OFD_SETLK, fl);
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
            int r = (int) FCNTL_LOCK.invokeExact(state, fd, F_OFD_GETLK, fl);
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
