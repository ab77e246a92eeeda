package io.diskmorph.storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;

/**
 * A read-only memory mapping of part of a file, unmapped explicitly. With
 * the JNI shim it is mmap, madvise and munmap, its buffer a direct buffer
 * over the mapping; without it, a shared arena of java.lang.foreign. The
 * shim's way spares a copy the memory API's set-up (method handles spun at
 * run time: about 5 ms of CPU at every start, on a 2-core machine beside the
 * JVM's own start-up) and a handshake of every Java thread at each unmap.
 *
 * <p>Nothing may read the buffer once {@link #unmap} has run: its memory is
 * gone (the caller's bookkeeping guarantees it, as the copy's reference
 * counts of windows do).
 */
public final class MappedRegion {
    private static final long PAGE = 4096;

    private final String name;
    private final long address;
    private final long length;
    private final ByteBuffer buffer;
    /** The java.lang.foreign mapping when there is no shim, else null. */
    private final ForeignMapping foreign;
    private boolean unmapped;

    private MappedRegion(String name, long address, long length, ByteBuffer buffer, ForeignMapping foreign) {
        this.name = name;
        this.address = address;
        this.length = length;
        this.buffer = buffer;
        this.foreign = foreign;
    }

    /**
     * Maps [offset, offset + length) of the file read-only: through
     * {@code nativeFd} when the shim is loaded and the descriptor open (a
     * descriptor of the file's own storage: one opened for the mapping alone
     * would drop the file's record locks when closed), else through
     * {@code channel}. {@code offset} is a multiple of the page size.
     */
    static MappedRegion map(String name, FileChannel channel, int nativeFd, long offset, long length)
            throws IOException {
        if (length <= 0 || length > Integer.MAX_VALUE || offset % PAGE != 0) {
            throw new IllegalArgumentException("mapping of " + length + " bytes at " + offset);
        }
        if (nativeFd >= 0 && JniSyscalls.loaded()) {
            long a = JniSyscalls.mapReadOnly0(nativeFd, offset, length);
            if (a < 0) {
                throw new NativeFs.ErrnoException("mmap", name, (int) -a);
            }
            return new MappedRegion(name, a, length, JniSyscalls.buffer0(a, length).asReadOnlyBuffer(), null);
        }
        ForeignMapping f = new ForeignMapping(channel, offset, length);
        return new MappedRegion(name, f.address(), length, f.buffer(), f);
    }

    /** The address of the first byte (page-aligned). */
    public long address() {
        return address;
    }

    /** The mapping's bytes, read-only, position 0, limit its length. */
    public ByteBuffer buffer() {
        return buffer.duplicate();
    }

    /**
     * Drops the pages of [from, from + length) of the region (whole pages
     * inside it) from this process's resident set; the page cache keeps
     * them, and reading them again maps them again.
     */
    public synchronized void dropPages(long from, long length) throws IOException {
        if (unmapped) {
            return;
        }
        long start = (from + PAGE - 1) & -PAGE;
        long end = Math.min(this.length, from + length) & -PAGE;
        if (end <= start) {
            return;
        }
        if (foreign != null) {
            foreign.dropPages(start, end - start);
            return;
        }
        long r = JniSyscalls.dropPages0(address + start, end - start);
        if (r != 0) {
            throw new NativeFs.ErrnoException("madvise", name, (int) -r);
        }
    }

    /** Whether {@link #unmap} has run. */
    public synchronized boolean isUnmapped() {
        return unmapped;
    }

    /** Ends the mapping (once; later calls do nothing). */
    public synchronized void unmap() throws IOException {
        if (unmapped) {
            return;
        }
        unmapped = true;
        if (foreign != null) {
            foreign.close();
            return;
        }
        long r = JniSyscalls.unmap0(address, length);
        if (r != 0) {
            throw new NativeFs.ErrnoException("munmap", name, (int) -r);
        }
    }

    /** The java.lang.foreign way, loaded only without the shim. */
    private static final class ForeignMapping {
        private final java.lang.foreign.Arena arena = java.lang.foreign.Arena.ofShared();
        private final java.lang.foreign.MemorySegment segment;

        ForeignMapping(FileChannel channel, long offset, long length) throws IOException {
            try {
                segment = channel.map(FileChannel.MapMode.READ_ONLY, offset, length, arena);
            } catch (IOException | RuntimeException e) {
                arena.close();
                throw e;
            }
        }

        long address() {
            return segment.address();
        }

        ByteBuffer buffer() {
            return segment.asByteBuffer().asReadOnlyBuffer();
        }

        void dropPages(long from, long length) {
            segment.asSlice(from, length).unload();
        }

        void close() {
            arena.close();
        }
    }
}
