package io.diskmorph.format.qcow2;

import io.diskmorph.storage.Storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.Arrays;

/**
 * The active L1 table, read in pages on first use (a 4 TiB image with 4 KiB
 * clusters has a 16 MiB L1; opening it reads nothing). Changed entries are
 * remembered per page and written by {@link #writeDirty}.
 */
final class L1Table {
    private static final int PAGE_BITS = 13;
    private static final int PAGE = 1 << PAGE_BITS;

    private final Storage storage;
    private final long offset;
    private final int size;
    private final long[][] pages;
    private final int[] dirtyLo;
    private final int[] dirtyHi;
    private boolean dirty;

    L1Table(Storage storage, long offset, int size) {
        this.storage = storage;
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
        dirty = true;
    }

    private long[] page(int p) throws IOException {
        long[] page = pages[p];
        if (page == null) {
            int entries = Math.min(PAGE, size - (p << PAGE_BITS));
            page = new long[entries];
            storage.readBytes(offset + ((long) p << PAGE_BITS) * 8, entries * 8).asLongBuffer().get(page);
            pages[p] = page;
        }
        return page;
    }

    boolean isDirty() {
        return dirty;
    }

    /** Writes the changed entries of every page. */
    void writeDirty() throws IOException {
        for (int p = 0; p < pages.length; p++) {
            if (dirtyHi[p] < 0) {
                continue;
            }
            int n = dirtyHi[p] - dirtyLo[p] + 1;
            ByteBuffer b = ByteBuffer.allocate(n * 8);
            b.asLongBuffer().put(pages[p], dirtyLo[p], n);
            storage.write(b, offset + (((long) p << PAGE_BITS) + dirtyLo[p]) * 8);
            dirtyHi[p] = -1;
        }
        dirty = false;
    }
}
