package io.diskmorph.format.qcow2;

import java.util.Arrays;

/**
 * One bit per host cluster (in use or not), in pages allocated on first use,
 * so memory follows the clusters actually used, at most a bitmap of the file.
 */
final class ClusterBitmap {
    private static final int PAGE_BITS = 16;
    private static final int PAGE_WORDS = (1 << PAGE_BITS) / 64;

    private long[][] pages = new long[16][];
    private long highest = -1;

    boolean get(long index) {
        int p = (int) (index >>> PAGE_BITS);
        if (p >= pages.length || pages[p] == null) {
            return false;
        }
        return (pages[p][(int) ((index >>> 6) & (PAGE_WORDS - 1))] & (1L << index)) != 0;
    }

    void set(long index) {
        int p = Math.toIntExact(index >>> PAGE_BITS);
        if (p >= pages.length) {
            pages = Arrays.copyOf(pages, Math.max(p + 1, pages.length * 2));
        }
        if (pages[p] == null) {
            pages[p] = new long[PAGE_WORDS];
        }
        pages[p][(int) ((index >>> 6) & (PAGE_WORDS - 1))] |= 1L << index;
        highest = Math.max(highest, index);
    }

    void clear(long index) {
        int p = (int) (index >>> PAGE_BITS);
        if (p < pages.length && pages[p] != null) {
            pages[p][(int) ((index >>> 6) & (PAGE_WORDS - 1))] &= ~(1L << index);
        }
        if (index == highest) {
            highest = previousSetBit(index);
        }
    }

    /** Highest index set, -1 when empty. */
    long highest() {
        return highest;
    }

    /** First index set in [from, to), or -1. */
    long nextSetBit(long from, long to) {
        long i = from;
        while (i < to) {
            int p = (int) (i >>> PAGE_BITS);
            if (p >= pages.length) {
                return -1;
            }
            long[] page = pages[p];
            if (page == null) {
                i = ((long) p + 1) << PAGE_BITS;
                continue;
            }
            int w = (int) ((i >>> 6) & (PAGE_WORDS - 1));
            long word = page[w] & (-1L << i);
            if (word != 0) {
                long found = (i & -64L) + Long.numberOfTrailingZeros(word);
                return found < to ? found : -1;
            }
            i = (i & -64L) + 64;
        }
        return -1;
    }

    private long previousSetBit(long before) {
        for (long i = before - 1; i >= 0; ) {
            int p = (int) (i >>> PAGE_BITS);
            long[] page = p < pages.length ? pages[p] : null;
            if (page == null) {
                i = ((long) p << PAGE_BITS) - 1;
                continue;
            }
            long word = page[(int) ((i >>> 6) & (PAGE_WORDS - 1))] & (-1L >>> (63 - (i & 63)));
            if (word != 0) {
                return (i & -64L) + 63 - Long.numberOfLeadingZeros(word);
            }
            i = (i & -64L) - 1;
        }
        return -1;
    }
}
