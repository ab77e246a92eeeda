package io.diskmorph.format.qcow2;

import io.diskmorph.image.cache.Dependencies;
import io.diskmorph.image.cache.SyncTracker;
import io.diskmorph.image.cache.WriteDependency;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.Arrays;

/**
 * The active L1 table, read in pages on first use (a 4 TiB image with 4 KiB
 * clusters has a 16 MiB L1; opening it reads nothing). Changed entries are
 * remembered per page and written by {@link #flush}, after what they depend
 * on (the L2 tables they point to).
 */
final class L1Table implements WriteDependency {
    private static final int PAGE_BITS = 13;
    private static final int PAGE = 1 << PAGE_BITS;

    private final SyncTracker file;
    private final long offset;
    private final int size;
    private final long[][] pages;
    private final int[] dirtyLo;
    private final int[] dirtyHi;
    private final Dependencies before = new Dependencies();

    L1Table(SyncTracker file, long offset, int size) {
        this.file = file;
        this.offset = offset;
        this.size = size;
        int n = (size + PAGE - 1) >>> PAGE_BITS;
        this.pages = new long[n][];
        this.dirtyLo = new int[n];
        this.dirtyHi = new int[n];
        Arrays.fill(dirtyHi, -1);
    }

    int size() {
        return size;
    }

    long get(int index) throws IOException {
        return page(index >>> PAGE_BITS)[index & (PAGE - 1)];
    }

    void set(int index, long value) throws IOException {
        int p = index >>> PAGE_BITS;
        int i = index & (PAGE - 1);
        page(p)[i] = value;
        if (dirtyHi[p] < 0) {
            dirtyLo[p] = i;
            dirtyHi[p] = i;
        } else {
            dirtyLo[p] = Math.min(dirtyLo[p], i);
            dirtyHi[p] = Math.max(dirtyHi[p], i);
        }
    }

    /** {@code before} is flushed before the changed entries are written. */
    void dependOn(WriteDependency before) {
        this.before.add(before);
    }

    private long[] page(int p) throws IOException {
        long[] page = pages[p];
        if (page == null) {
            int entries = Math.min(PAGE, size - (p << PAGE_BITS));
            page = new long[entries];
            file.storage().readBytes(offset + ((long) p << PAGE_BITS) * 8, entries * 8).asLongBuffer().get(page);
            pages[p] = page;
        }
        return page;
    }

    /** Writes the changed entries of every page, after the dependencies, and makes them durable. */
    @Override
    public void flush() throws IOException {
        before.flush();
        for (int p = 0; p < pages.length; p++) {
            if (dirtyHi[p] < 0) {
                continue;
            }
            int n = dirtyHi[p] - dirtyLo[p] + 1;
            ByteBuffer b = ByteBuffer.allocate(n * 8);
            b.asLongBuffer().put(pages[p], dirtyLo[p], n);
            file.write(b, offset + (((long) p << PAGE_BITS) + dirtyLo[p]) * 8);
            dirtyHi[p] = -1;
        }
        file.flush();
    }
}
