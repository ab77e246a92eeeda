package io.diskmorph.storage;

import java.io.IOException;
import java.util.ArrayDeque;

/**
 * Drop-behind for a file written mostly front to back (a copy's target):
 * the written data is handed to the disk as the writes go on and, a window
 * later, dropped from the page cache, so the copy keeps some MiB of page
 * cache in use instead of all it wrote (nbdcopy does the same).
 *
 * <p>Why: a page the copy writes must first be given to the page cache; on a
 * VM that hands free memory back to its host (free page reporting, balloon),
 * each such fresh page costs a host fault, and copies spent most of their
 * time there (README, issue 19). Pages dropped here go back to the free
 * lists hot and are reused by the next writes. It also leaves the rest of
 * the page cache (the user's) alone. The price: the data is written to disk
 * during the copy, not later, so the copy goes no faster than the disk
 * takes its data once the window is full.
 *
 * <p>Writes going forward (contiguous, or past a hole of at most
 * {@link #STEP}) gather into a range; each time it passes a multiple of
 * {@link #STEP}, the writeback of the range up to there starts. Once more
 * than the window's written bytes are under writeback, the oldest ranges
 * are waited for and dropped. A write further ahead, or one behind of at
 * least {@link #LARGE} bytes (out-of-order copies), starts a new range; a
 * smaller write behind (format metadata: a header, an L2 table, rewritten
 * later) is left to the page cache. Ranges end where a write ended or at a
 * multiple of {@link #STEP}: the page cache holds a file in folios of up to
 * 2 MiB (ext4 since Linux 6.16), each within one write and aligned to its
 * size, and the kernel drops only folios (and pages) a range covers whole.
 * Nothing here changes what the file holds: dropping only removes clean
 * pages.
 */
final class DropBehind {
    /** The writeback of gathered contiguous data starts at multiples of this (the largest folio). */
    static final long STEP = 2L << 20;
    /**
     * Written bytes under writeback beyond this are waited for and dropped,
     * oldest first. On this project's VM the copy went as fast as the disk
     * took the data with 4 MiB to 128 MiB (1.02-1.26 s for 1.7 GB); 32 MiB
     * gives slower storage a deeper queue and still keeps the page cache
     * in use small.
     */
    static final long WINDOW = 32L << 20;
    /** A write behind the gathered range starts a new range if it is at least this large. */
    static final int LARGE = 64 << 10;

    /** The two calls, on the file's descriptor (tests record them). */
    interface Calls {
        /** Starts the writeback of [offset, offset + length). */
        void startWriteback(long offset, long length) throws IOException;

        /** Waits until [offset, offset + length) is written, then drops it from the page cache. */
        void waitAndDrop(long offset, long length) throws IOException;
    }

    private final Calls calls;
    private final long window;
    /** The gathered range whose writeback has not started: [gatherStart, gatherEnd); empty when equal. */
    private long gatherStart = -1;
    private long gatherEnd = -1;
    /** The bytes written in the gathered range (holes between its writes excluded). */
    private long gatherBytes;
    /** Ranges under writeback, oldest first: {offset, length, bytes written in it}. */
    private final ArrayDeque<long[]> underWriteback = new ArrayDeque<>();
    private long bytesUnderWriteback;

    /** {@code window}: {@link #WINDOW}, smaller in tests. */
    DropBehind(Calls calls, long window) {
        this.calls = calls;
        this.window = window;
    }

    /** Records a completed write of [offset, offset + length). */
    void written(long offset, long length) throws IOException {
        if (length <= 0) {
            return;
        }
        if (gatherEnd >= 0 && offset >= gatherEnd && offset - gatherEnd <= STEP) {
            gatherEnd = offset + length;
            gatherBytes += length;
        } else if (offset >= gatherEnd || length >= LARGE) {
            startGathered(gatherEnd);
            gatherStart = offset;
            gatherEnd = offset + length;
            gatherBytes = length;
        } else {
            return;
        }
        // up to the last multiple of STEP: the rest (a partial page, part of a folio) goes with the next writes
        startGathered(gatherEnd & -STEP);
    }

    /** Starts the writeback of the gathered range up to {@code end}; the rest stays gathered. */
    private void startGathered(long end) throws IOException {
        if (end <= gatherStart) {
            return;
        }
        long length = end - gatherStart;
        long tailBytes = Math.min(gatherBytes, gatherEnd - end); // exact when the tail was written whole
        long bytes = gatherBytes - tailBytes;
        calls.startWriteback(gatherStart, length);
        underWriteback.add(new long[] {gatherStart, length, bytes});
        bytesUnderWriteback += bytes;
        gatherStart = end;
        gatherBytes = tailBytes;
        while (bytesUnderWriteback > window) {
            long[] oldest = underWriteback.poll();
            calls.waitAndDrop(oldest[0], oldest[1]);
            bytesUnderWriteback -= oldest[2];
        }
    }

    /** Written bytes whose writeback started and that were not yet waited for (tests). */
    long bytesUnderWriteback() {
        return bytesUnderWriteback;
    }
}
