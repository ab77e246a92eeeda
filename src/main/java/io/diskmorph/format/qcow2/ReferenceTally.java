package io.diskmorph.format.qcow2;

import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;

/**
 * qemu's in-memory refcount table for check (the "IMRT"): how many
 * references each host cluster has, counted up to the image's refcount
 * maximum. Compact: one byte per cluster in pages allocated on first use,
 * so memory follows the clusters that are referenced (at most a byte per
 * cluster of the file); counts of 255 and more live in an overflow map.
 */
final class ReferenceTally {
    private static final int PAGE_BITS = 16;
    private static final int PAGE = 1 << PAGE_BITS;
    private static final int OVERFLOW = 0xff;

    /** Largest count, unsigned (all ones for 64-bit refcounts). */
    private final long max;
    /** Counts below this are incremented in place in their byte. */
    private final int byteLimit;
    private byte[][] pages = new byte[16][];
    private final Map<Long, Long> big = new HashMap<>();
    private long size;

    ReferenceTally(int refcountBits) {
        this.max = refcountBits == 64 ? -1L : (1L << refcountBits) - 1;
        this.byteLimit = refcountBits >= 8 ? OVERFLOW - 1 : (int) max;
    }

    /** Number of clusters tracked (qemu's nb_clusters): grows (by the caller), never shrinks. */
    long size() {
        return size;
    }

    void ensureSize(long clusters) {
        size = Math.max(size, clusters);
    }

    long get(long cluster) {
        int p = (int) (cluster >>> PAGE_BITS);
        if (p >= pages.length) {
            return 0;
        }
        byte[] page = pages[p];
        if (page == null) {
            return 0;
        }
        int v = page[(int) cluster & (PAGE - 1)] & 0xff;
        return v == OVERFLOW ? big.get(cluster) : v;
    }

    /** Counts one more reference; false (count unchanged) when the count is already at the maximum. */
    boolean increment(long cluster) {
        int i = (int) cluster & (PAGE - 1);
        int p = (int) (cluster >>> PAGE_BITS);
        byte[] page = p < pages.length && p >= 0 ? pages[p] : null;
        if (page == null) {
            page = page(cluster);
        }
        int v = page[i] & 0xff;
        if (v < byteLimit) {
            page[i] = (byte) (v + 1);
            return true;
        }
        long count = v == OVERFLOW ? big.get(cluster) : v;
        if (count == max) {
            return false;
        }
        set(cluster, count + 1);
        return true;
    }

    void set(long cluster, long count) {
        byte[] page = page(cluster);
        int i = (int) cluster & (PAGE - 1);
        if (count >= 0 && count < OVERFLOW) {
            if ((page[i] & 0xff) == OVERFLOW) {
                big.remove(cluster);
            }
            page[i] = (byte) count;
        } else {
            page[i] = (byte) OVERFLOW;
            big.put(cluster, count);
        }
    }

    /** First cluster in [from, to) with a non-zero count, or {@code to}. */
    long nextUsed(long from, long to) {
        long i = from;
        while (i < to) {
            int p = (int) (i >>> PAGE_BITS);
            byte[] page = p < pages.length ? pages[p] : null;
            long pageEnd = Math.min(to, ((long) p + 1) << PAGE_BITS);
            if (page == null) {
                i = pageEnd;
                continue;
            }
            for (; i < pageEnd; i++) {
                if (page[(int) i & (PAGE - 1)] != 0) {
                    return i;
                }
            }
        }
        return to;
    }

    /** Forgets every count; the size stays. */
    void clear() {
        Arrays.fill(pages, null);
        big.clear();
    }

    private byte[] page(long cluster) {
        int p = Math.toIntExact(cluster >>> PAGE_BITS);
        if (p >= pages.length) {
            pages = Arrays.copyOf(pages, Math.max(p + 1, pages.length * 2));
        }
        byte[] page = pages[p];
        if (page == null) {
            page = new byte[PAGE];
            pages[p] = page;
        }
        return page;
    }
}
