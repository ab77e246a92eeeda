package io.diskmorph.storage;

import java.io.IOException;
import java.util.ArrayDeque;
import java.util.function.LongSupplier;

/**
 * Drop-behind for a file written mostly front to back (a copy's target),
 * used when it pays: the written data is handed to the disk as the writes
 * go on and, a window later, dropped from the page cache, so the copy keeps
 * some MiB of page cache in use instead of all it wrote (nbdcopy always
 * does this).
 *
 * <p>Why: a page the copy writes must first be given to the page cache. On
 * a VM that hands free memory back to its host (free page reporting, a
 * balloon), each such fresh page costs a host fault, and copies spent most
 * of their time there (README, issue 19): writing into the page cache ran
 * at 0.7 GB/s instead of 7. Pages dropped here go back to the free lists
 * and are reused by the next writes, which then go at the speed of the
 * page cache again; the price is that the copy also waits for the disk
 * (1.6 GB/s on this project's VM). Where the page cache is fast (most
 * machines, and this VM while its freed memory is still backed), waiting
 * for the disk would only slow a copy down (qemu-img leaves the data to
 * the kernel's later writeback), so the mode is chosen by measurement
 * ({@link Mode#AUTO}): the writing thread's CPU time in its writes (a host
 * fault stalls it there; time it waited for a CPU, or slept in the
 * kernel's dirty-page throttling, does not count) and, when dropping, the
 * elapsed time of the writeback calls (waiting for the disk), per byte over each
 * {@link #BLOCK} bytes written; a copy starts
 * without dropping, tries it once writes are slower than
 * {@link #TRY_COST_NANOS_PER_BYTE}, keeps whichever of the two last cost
 * less, and while dropping tries keeping again after 2, 4, 8... blocks
 * (memory handed back just before a copy may fault only for its first
 * pages).
 *
 * <p>When dropping: writes going forward (contiguous, or past a hole of at
 * most {@link #STEP}) gather into a range; each time it passes a multiple
 * of {@link #STEP}, the writeback of the range up to there starts. Once
 * more than the window's written bytes are under writeback, the oldest
 * ranges are waited for and dropped. A write further ahead, or one behind
 * of at least {@link #LARGE} bytes (out-of-order copies), starts a new
 * range; a smaller write behind (format metadata: a header, a 64 KiB L2
 * table, rewritten later) is left to the page cache. Ranges end where a write
 * ended or at a multiple of {@link #STEP}: the page cache holds a file in
 * folios of up to 2 MiB (ext4 since Linux 6.16), each within one write and
 * aligned to its size, and the kernel drops only folios (and pages) a range
 * covers whole. Nothing here changes what the file holds: dropping only
 * removes clean pages.
 */
final class DropBehind {
    /**
     * The writeback of gathered contiguous data starts at multiples of this
     * (the largest page-cache folio with 4 KiB pages, the PMD size; with
     * larger pages folios stay within one write, and every cut here is at
     * a write's end or a multiple of this).
     */
    static final long STEP = 2L << 20;
    /**
     * Written bytes under writeback beyond this are waited for and dropped,
     * oldest first. On this project's VM the copy went as fast as the disk
     * took the data with 4 MiB to 128 MiB (1.02-1.26 s for 1.7 GB); 32 MiB
     * gives slower storage a deeper queue and still keeps the page cache
     * in use small.
     */
    static final long WINDOW = 32L << 20;
    /**
     * A write behind the gathered range starts a new range if it is at
     * least this large: more than qcow2's metadata at its default cluster
     * size (64 KiB L2 tables and refcount blocks), which is rewritten.
     */
    static final int LARGE = 256 << 10;

    /** Writes are timed over blocks of this many bytes, and the mode is chosen after each. */
    static final long BLOCK = 32L << 20;
    /**
     * Writes slower than this (ns of the writer's CPU per byte: 2 GB/s)
     * make {@link Mode#AUTO} try dropping. Into backed page cache this VM
     * writes at 0.12-0.36 ns per byte, into pages that fault on the host at
     * 1.2-2.6, and dropping ran at 0.5-0.6 (the disk).
     */
    static final double TRY_COST_NANOS_PER_BYTE = 0.5;

    /** When to drop behind. */
    enum Mode {
        /** Never (the page cache keeps what is written, as without this class). */
        OFF,
        /** Always (tests, and users whose page cache is better left alone). */
        ON,
        /** Whichever costs less, measured as the copy goes. */
        AUTO
    }

    /** The two calls, on the file's descriptor (tests record them). */
    interface Calls {
        /** Starts the writeback of [offset, offset + length). */
        void startWriteback(long offset, long length) throws IOException;

        /** Waits until [offset, offset + length) is written, then drops it from the page cache. */
        void waitAndDrop(long offset, long length) throws IOException;
    }

    private final Calls calls;
    private final long window;
    private final Mode mode;
    private final LongSupplier nanoClock;
    /** Whether writes are dropped behind now. */
    private boolean dropping;
    /** The block being timed: bytes written and nanoseconds spent on them. */
    private long blockBytes;
    private long blockNanos;
    /** Blocks timed since dropping started (the first waits for nothing yet and is not counted). */
    private int blocksDropping;
    /** Counted dropping blocks after which keeping is tried again; doubles with each try. */
    private int blocksBeforeTry = 2;
    /** Nanoseconds per byte of the last block timed without and with dropping; negative until timed. */
    private double costKeeping = -1;
    private double costDropping = -1;
    /** The gathered range whose writeback has not started: [gatherStart, gatherEnd); empty when equal. */
    private long gatherStart = -1;
    private long gatherEnd = -1;
    /** The bytes written in the gathered range (holes between its writes excluded). */
    private long gatherBytes;
    /** Ranges under writeback, oldest first: {offset, length, bytes written in it}. */
    private final ArrayDeque<long[]> underWriteback = new ArrayDeque<>();
    private long bytesUnderWriteback;

    /** {@code window}: {@link #WINDOW}, smaller in tests; {@code nanoClock}: System::nanoTime but in tests. */
    DropBehind(Calls calls, long window, Mode mode, LongSupplier nanoClock) {
        this.calls = calls;
        this.window = window;
        this.mode = mode;
        this.nanoClock = nanoClock;
        this.dropping = mode == Mode.ON;
    }

    /**
     * Records a completed write of [offset, offset + length) that cost the
     * writing thread {@code writeNanos} of CPU time; when dropping, starts
     * writeback and waits as the window says (those calls are timed by the
     * clock: a wait for the disk costs the copy time, not CPU).
     */
    void written(long offset, long length, long writeNanos) throws IOException {
        if (length <= 0) {
            return;
        }
        long spent = writeNanos;
        if (dropping) {
            long start = nanoClock.getAsLong();
            gather(offset, length);
            spent += nanoClock.getAsLong() - start;
        }
        if (mode == Mode.AUTO) {
            time(length, spent);
        }
    }

    /** Times the writes block by block and switches the mode when the other one costs less. */
    private void time(long length, long nanos) {
        blockBytes += length;
        blockNanos += nanos;
        if (blockBytes < BLOCK) {
            return;
        }
        double cost = (double) blockNanos / blockBytes;
        blockBytes = 0;
        blockNanos = 0;
        if (!dropping) {
            costKeeping = cost;
            if (cost > Math.max(TRY_COST_NANOS_PER_BYTE, costDropping)) {
                dropping = true;
                blocksDropping = 0;
                gatherStart = -1;
                gatherEnd = -1;
                gatherBytes = 0;
            }
        } else if (++blocksDropping > 1) {
            costDropping = cost;
            // leave when keeping cost less, and now and then try keeping again: the pages that fault
            // may have been only the first ones (memory handed back just before the copy, the rest still
            // backed), which dropping would never see; the tries grow rarer where they keep failing
            if (cost > costKeeping || blocksDropping > blocksBeforeTry) {
                if (cost <= costKeeping) {
                    blocksBeforeTry *= 2;
                }
                dropping = false; // what is under writeback stays cached: nothing waits for it
                underWriteback.clear();
                bytesUnderWriteback = 0;
            }
        }
    }

    /** Whether writes are dropped behind now (tests). */
    boolean dropping() {
        return dropping;
    }

    private void gather(long offset, long length) throws IOException {
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
            bytesUnderWriteback -= oldest[2];
            calls.waitAndDrop(oldest[0], oldest[1]);
        }
    }

    /** Written bytes whose writeback started and that were not yet waited for (tests). */
    long bytesUnderWriteback() {
        return bytesUnderWriteback;
    }
}
