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
    /** The kernel's page size (4 KiB here; 16 or 64 KiB on some aarch64 and ppc64 kernels). */
    private static final long PAGE = JniSyscalls.loaded() ? JniSyscalls.pageSize0() : 4096;

    private final String name;
    /** The first byte asked for, and the mapping itself (from the page holding it). */
    private final long address;
    private final long length;
    private final long mapAddress;
    private final long mapLength;
    private final ByteBuffer buffer;
    /** The java.lang.foreign mapping when there is no shim, else null. */
    private final ForeignMapping foreign;
    private boolean unmapped;

    private MappedRegion(String name, long address, long length, long mapAddress, long mapLength, ByteBuffer buffer,
                         ForeignMapping foreign) {
        this.name = name;
        this.address = address;
        this.length = length;
        this.mapAddress = mapAddress;
        this.mapLength = mapLength;
        this.buffer = buffer;
        this.foreign = foreign;
    }

    /**
     * Maps [offset, offset + length) of the file read-only: through
     * {@code nativeFd} when the shim is loaded and the descriptor open (a
     * descriptor of the file's own storage: one opened for the mapping alone
     * would drop the file's record locks when closed), else through
     * {@code channel}.
     */
    static MappedRegion map(String name, FileChannel channel, int nativeFd, long offset, long length)
            throws IOException {
        if (length <= 0 || length > Integer.MAX_VALUE || offset < 0) {
            throw new IllegalArgumentException("mapping of " + length + " bytes at " + offset);
        }
        if (nativeFd >= 0 && JniSyscalls.loaded()) {
            // mmap takes offsets that are multiples of the page size: map from the page holding the first byte
            long lead = offset % PAGE;
            long mapLength = length + lead;
            long a = JniSyscalls.mapReadOnly0(nativeFd, offset - lead, mapLength);
            if (a < 0) {
                throw new NativeFs.ErrnoException("mmap", name, (int) -a);
            }
            ByteBuffer b;
            try {
                b = JniSyscalls.buffer0(a + lead, length).asReadOnlyBuffer();
            } catch (RuntimeException | Error e) {
                JniSyscalls.unmap0(a, mapLength);
                throw e;
            }
            return new MappedRegion(name, a + lead, length, a, mapLength, b, null);
        }
        ForeignMapping f = new ForeignMapping(channel, offset, length);
        return new MappedRegion(name, f.address(), length, f.address(), length, f.buffer(), f);
    }

    /** The address of the first byte. */
    public long address() {
        return address;
    }

    /** The mapping's bytes, read-only, position 0, limit its length. */
    public ByteBuffer buffer() {
        return buffer.duplicate();
    }

    /**
     * Drops the pages of [from, from + length) of the region (the whole
     * pages inside it) from this process's resident set; the page cache
     * keeps them, and reading them again maps them again.
     */
    public synchronized void dropPages(long from, long length) throws IOException {
        if (unmapped) {
            return;
        }
        if (foreign != null) {
            long start = (from + 4095) & -4096L;
            long end = Math.min(this.length, from + length) & -4096L;
            if (end > start) {
                foreign.dropPages(start, end - start); // unload rounds to the real pages itself
            }
            return;
        }
        long start = (address + from + PAGE - 1) & -PAGE;
        long end = Math.min(address + this.length, address + from + length) & -PAGE;
        if (end <= start) {
            return;
        }
        long r = JniSyscalls.dropPages0(start, end - start);
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
        long r = JniSyscalls.unmap0(mapAddress, mapLength);
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
