package io.diskmorph.convert;

/**
 * A sparse bitmap over cluster indexes: pages of 2^16 bits are allocated on
 * first set, so memory follows the clusters actually marked, not the range.
 */
final class ClusterBitmap {
    private static final int PAGE_BITS = 16;
    private static final int PAGE_LONGS = (1 << PAGE_BITS) / 64;

    private long[][] pages = new long[16][];
    private long count;

    ClusterBitmap copy() {
        ClusterBitmap c = new ClusterBitmap();
        c.pages = new long[pages.length][];
        for (int i = 0; i < pages.length; i++) {
            if (pages[i] != null) {
                c.pages[i] = pages[i].clone();
            }
        }
        c.count = count;
        return c;
    }

    boolean get(long index) {
        long p = index >>> PAGE_BITS;
        if (index < 0 || p >= pages.length || pages[(int) p] == null) {
            return false;
        }
        int bit = (int) (index & ((1 << PAGE_BITS) - 1));
        return (pages[(int) p][bit >>> 6] & (1L << bit)) != 0;
    }

    /** Sets the bit; returns false when it was already set. */
    boolean set(long index) {
        long p = index >>> PAGE_BITS;
        if (p >= pages.length) {
            long n = Math.max(p + 1, pages.length * 2L);
            if (n > Integer.MAX_VALUE - 8) {
                throw new IllegalArgumentException("cluster index too large: " + index);
            }
            pages = java.util.Arrays.copyOf(pages, (int) n);
        }
        long[] page = pages[(int) p];
        if (page == null) {
            page = pages[(int) p] = new long[PAGE_LONGS];
        }
        int bit = (int) (index & ((1 << PAGE_BITS) - 1));
        long mask = 1L << bit;
        if ((page[bit >>> 6] & mask) != 0) {
            return false;
        }
        page[bit >>> 6] |= mask;
        count++;
        return true;
    }

    void clear(long index) {
        long p = index >>> PAGE_BITS;
        if (p < pages.length && pages[(int) p] != null) {
            int bit = (int) (index & ((1 << PAGE_BITS) - 1));
            long mask = 1L << bit;
            if ((pages[(int) p][bit >>> 6] & mask) != 0) {
                pages[(int) p][bit >>> 6] &= ~mask;
                count--;
            }
        }
    }

    long count() {
        return count;
    }

    /** First clear index >= from. */
    long nextClear(long from) {
        long i = from;
        while (true) {
            long p = i >>> PAGE_BITS;
            if (p >= pages.length || pages[(int) p] == null) {
                return i;
            }
            long[] page = pages[(int) p];
            int bit = (int) (i & ((1 << PAGE_BITS) - 1));
            int word = bit >>> 6;
            long w = ~page[word] & (-1L << (bit & 63));
            while (w == 0 && ++word < PAGE_LONGS) {
                w = ~page[word];
            }
            if (w != 0) {
                return (p << PAGE_BITS) + word * 64L + Long.numberOfTrailingZeros(w);
            }
            i = (p + 1) << PAGE_BITS;
        }
    }

    /** First set index >= from, or -1. */
    long nextSet(long from) {
        long i = Math.max(0, from);
        while (true) {
            long p = i >>> PAGE_BITS;
            if (p >= pages.length) {
                return -1;
            }
            long[] page = pages[(int) p];
            if (page == null) {
                i = (p + 1) << PAGE_BITS;
                continue;
            }
            int bit = (int) (i & ((1 << PAGE_BITS) - 1));
            int word = bit >>> 6;
            long w = page[word] & (-1L << (bit & 63));
            while (w == 0 && ++word < PAGE_LONGS) {
                w = page[word];
            }
            if (w != 0) {
                return (p << PAGE_BITS) + word * 64L + Long.numberOfTrailingZeros(w);
            }
            i = (p + 1) << PAGE_BITS;
        }
    }

    /** Number of set bits in [from, to). */
    long countRange(long from, long to) {
        long n = 0;
        for (long i = nextSet(from); i >= 0 && i < to; i = nextSet(i + 1)) {
            n++;
        }
        return n;
    }
}
