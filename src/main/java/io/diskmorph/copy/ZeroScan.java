package io.diskmorph.copy;

import java.nio.ByteBuffer;

/**
 * Zero detection in data read from the source, with qemu-img convert's rules
 * (qemu-img.c is_allocated_sectors / is_allocated_sectors_min, -S): a buffer
 * is split into runs of 512-byte sectors that are written or treated as
 * zeros; run ends are aligned to {@code alignment} sectors (the -S size
 * rounded down to a power of two) so that writes stay aligned, and once a
 * run of data starts, zero runs shorter than {@code min} sectors stay part
 * of it instead of splitting the write.
 *
 * <p>Comparisons use vectorised {@link ByteBuffer#mismatch} (direct
 * buffers: the chunk buffers and the mapped source); one scanner per
 * thread.
 */
final class ZeroScan {
    static final int SECTOR = 512;
    /**
     * Compared against in pieces of up to 64 KiB: it stays in the CPU's
     * cache beside the data, and a copy zeroes (and faults in) 16 pages of
     * it, not the 256 a 1 MiB one cost at every start.
     */
    private static final ByteBuffer ZEROS = ByteBuffer.allocateDirect(64 << 10).asReadOnlyBuffer();

    private final int min;
    private final int alignment;
    /** Sectors of the run the last call described. */
    private int pnum;
    /**
     * Views whose position and limit frame each comparison: slices made per
     * comparison were garbage enough to grow a copy's heap by 5 MiB (the
     * compiler that runs here does no escape analysis).
     */
    private ByteBuffer view;
    private final ByteBuffer zeros = ZEROS.duplicate();

    /** @param minSparse the -S size in bytes (a positive multiple of 512) */
    ZeroScan(long minSparse) {
        this.min = (int) (minSparse / SECTOR);
        this.alignment = Integer.highestOneBit(Math.max(1, min));
    }

    /**
     * Whether sectors [0, n) of the buffer are certainly one run of data,
     * checking one word per block of {@code alignment} sectors: when the
     * range starts and ends on that alignment, a zero run that counts (at
     * least {@code min} sectors once its ends are aligned) always holds a
     * whole aligned block, whose first word is then zero. False means
     * "look closer" ({@link #allocated}), not "zeros".
     */
    boolean surelyData(ByteBuffer words, int n, long sector) {
        if ((sector & (alignment - 1)) != 0 || (n & (alignment - 1)) != 0) {
            return false;
        }
        int step = alignment * SECTOR;
        for (int off = 0; off < n * SECTOR; off += step) {
            if (words.getLong(off) == 0) {
                return false;
            }
        }
        return true;
    }

    /** Sectors of the run the last {@link #allocated} call described. */
    int runSectors() {
        return pnum;
    }

    /**
     * Describes the run at the start of sectors [first, first + n) of
     * {@code buf} ({@code sector} is the absolute number of sector
     * {@code first}): returns whether it must be written, and sets
     * {@link #runSectors()}.
     * qemu's is_allocated_sectors_min.
     */
    boolean allocated(ByteBuffer buf, int first, int n, long sector) {
        view = buf.duplicate();
        int minRun = Math.min(min, n);
        if (!run(buf, first, n, sector)) {
            return false;
        }
        int used = pnum;
        int checked = used;
        int at = first + pnum;
        int left = n - pnum;
        long s = sector + pnum;
        while (left > 0) {
            boolean data = run(buf, at, left, s);
            at += pnum;
            left -= pnum;
            s += pnum;
            checked += pnum;
            if (data) {
                used = checked;
            } else if (pnum >= minRun) {
                break;
            }
        }
        pnum = used;
        return true;
    }

    /** qemu's is_allocated_sectors: one run of equal sectors, its end aligned. */
    private boolean run(ByteBuffer buf, int first, int n, long sector) {
        if (n <= 0) {
            pnum = 0;
            return false;
        }
        boolean zero = mismatch(first * SECTOR, SECTOR) < 0;
        int i = zero ? firstNonZeroSector(first + 1, first + n) - first
                : firstZeroSector(buf, first + 1, first + n) - first;
        if (i == n) {
            pnum = i;
            return !zero;
        }
        int tail = (int) ((sector + i) & (alignment - 1));
        if (tail != 0) {
            if (zero && i <= tail) {
                zero = false; // the following data rewrites this short tail anyway
            }
            if (!zero) {
                i = Math.min(i + alignment - tail, n);
            } else {
                i -= tail;
            }
        }
        pnum = i;
        return !zero;
    }

    /** The first non-zero byte of [from, from + length) of the view (length up to 64 KiB), relative, or -1. */
    private int mismatch(int from, int length) {
        view.limit(from + length).position(from);
        zeros.limit(length).position(0);
        return view.mismatch(zeros);
    }

    /** First sector in [from, to) holding a non-zero byte, or {@code to}. */
    private int firstNonZeroSector(int from, int to) {
        int end = to * SECTOR;
        int pos = from * SECTOR;
        while (pos < end) {
            int len = Math.min(end - pos, ZEROS.capacity());
            int m = mismatch(pos, len);
            if (m >= 0) {
                return (pos + m) / SECTOR;
            }
            pos += len;
        }
        return to;
    }

    /**
     * First sector in [from, to) that is all zeros, or {@code to}. Data
     * sectors almost always show a non-zero first word: only the others get
     * the full comparison.
     */
    private int firstZeroSector(ByteBuffer buf, int from, int to) {
        for (int s = from; s < to; s++) {
            int off = s * SECTOR;
            if (buf.getLong(off) == 0 && mismatch(off, SECTOR) < 0) {
                return s;
            }
        }
        return to;
    }

    static boolean isZero(ByteBuffer buf, long offset, long length) {
        int pos = (int) offset;
        int end = (int) (offset + length);
        while (pos < end) {
            int len = Math.min(end - pos, ZEROS.capacity());
            if (buf.slice(pos, len).mismatch(ZEROS.slice(0, len)) >= 0) {
                return false;
            }
            pos += len;
        }
        return true;
    }
}
