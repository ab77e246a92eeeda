package io.diskmorph.convert;

import io.diskmorph.image.RelocatableImage;
import io.diskmorph.storage.Storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

/**
 * The rounds of the in-place conversion to raw ({@link ToRaw}): moves every
 * guest unit to its home (the host unit at its guest offset), the source
 * image valid after every round.
 *
 * <p>A unit moves home once its home is free. Homes held by other units form
 * chains (B sits in A's home, C in B's, ...) that end at a free home, or
 * cycles. A chain advances one unit per round, so alone a long chain (a
 * sequentially written image whose data sits a few units above home is
 * such a chain) would take one round per unit; a cycle never starts. Both
 * are cut: the unit sitting in a blocked home is evacuated to a slot of the
 * spare area past the end, which frees that home at once, and the
 * evacuated unit goes home later like any other. Cuts are taken at a
 * stride through the guest, so the chains that advance together are of
 * similar length, and only when too few units are ready. The spare area
 * bounds the extra disk space; a unit is moved at most twice.
 *
 * <p>Each round: destinations sorted, written in runs (blocks of zeros are
 * punched instead), then the driver remaps (syncing the data first, two
 * syncs a round for qcow2 and QED), then the old places are punched and the
 * units whose homes they were become ready. The rounds, and so the syncs,
 * number about the units to move divided by the spare area's units.
 */
final class RollForward {
    private static final int COPY_UNITS_BYTES = 8 << 20;
    private static final int ZERO_BLOCK = 4096;
    /** A round's data is read and written in batches of at most this much memory. */
    private static final long BATCH_BYTES = 32L << 20;
    private static final int READERS = 8;

    private final Storage image;
    private final RelocatableImage.Relocation rel;
    private final long[] hostOf;
    private final long unit;
    private final int units;
    private final long spareBase;
    private final int spareUnits;
    private final long oldEndUnits;
    private final Cancellation cancel;
    private final PhaseClock clock;
    /** Bytes the rounds move home (every misplaced unit but unit 0, which the last step writes): the progress total. */
    private final long totalBytes;

    /** Guest unit held by each host unit below the metadata, -1 when free. */
    private final int[] owner;
    private final int[] ready;
    private int readyHead;
    private int readyTail;
    private int readyCount;
    private final int[] freeSpare;
    private int freeSpareCount;
    private final int[] movedIn;
    private int round;
    private long misplaced;
    private long cursor = 1;
    private long cursorPhase;
    private long movedBytes;
    /** Units copied (home moves and evacuations); for the report. */
    long copies;
    private byte[] batch;
    private ExecutorService readers;
    long evacuations;
    long rounds;

    RollForward(Storage image, RelocatableImage.Relocation rel, long[] hostOf, long unit, int units, long spareBase,
                int spareUnits, long oldEndUnits, Cancellation cancel, PhaseClock clock) {
        this.image = image;
        this.rel = rel;
        this.hostOf = hostOf;
        this.unit = unit;
        this.units = units;
        this.spareBase = spareBase;
        this.spareUnits = spareUnits;
        this.oldEndUnits = oldEndUnits;
        this.cancel = cancel;
        this.clock = clock;
        this.owner = new int[Math.toIntExact(spareBase + spareUnits)];
        Arrays.fill(owner, -1);
        for (int g = 0; g < units; g++) {
            if (hostOf[g] >= 0) {
                owner[(int) hostOf[g]] = g;
            }
        }
        this.ready = new int[units];
        this.freeSpare = new int[spareUnits];
        for (int s = spareUnits - 1; s >= 0; s--) {
            freeSpare[freeSpareCount++] = (int) (spareBase + s);
        }
        this.movedIn = new int[units];
        Arrays.fill(movedIn, -1);
        for (int g = 1; g < units; g++) {
            if (misplaced(g)) {
                misplaced++;
                if (owner[g] < 0) {
                    pushReady(g);
                }
            }
        }
        this.totalBytes = misplaced * unit;
    }

    private boolean misplaced(int g) {
        return g > 0 && hostOf[g] >= 0 && hostOf[g] != g;
    }

    private void pushReady(int g) {
        ready[readyTail] = g;
        readyTail = (readyTail + 1) % ready.length;
        readyCount++;
    }

    private int popReady() {
        int g = ready[readyHead];
        readyHead = (readyHead + 1) % ready.length;
        readyCount--;
        return g;
    }

    /**
     * After the metadata moved away: punches every unit of the old file that
     * holds no data (the old tables, leaked or freed units) except the header.
     */
    void freeOldSpace() throws IOException {
        long end = Math.min(oldEndUnits, owner.length);
        for (long u = 1; u < end; ) {
            if (owner[(int) u] >= 0) {
                u++;
                continue;
            }
            long from = u;
            while (u < end && owner[(int) u] < 0) {
                u++;
            }
            punchIfData(from * unit, u * unit);
        }
        image.sync();
    }

    private void punchIfData(long from, long to) throws IOException {
        if (image.nextData(from) < to) {
            image.punchHole(from, to - from);
        }
    }

    void run() throws IOException {
        try {
            rounds();
        } finally {
            if (readers != null) {
                readers.shutdownNow();
            }
        }
    }

    private void rounds() throws IOException {
        clock.update("move", 0, totalBytes);
        int cap = spareUnits;
        int[] guests = new int[2 * cap];
        long[] dests = new long[2 * cap];
        while (misplaced > 0) {
            cancel.check();
            round++;
            int n = 0;
            while (readyCount > 0 && n < cap) {
                int g = popReady();
                if (!misplaced(g) || owner[g] >= 0) {
                    continue; // stale entry
                }
                owner[g] = g;
                movedIn[g] = round;
                guests[n] = g;
                dests[n++] = g;
            }
            if (n < cap / 2 && freeSpareCount > 0) {
                n = cut(guests, dests, n, 2 * cap, false);
                if (n == 0) {
                    n = cut(guests, dests, n, 2 * cap, true);
                }
            }
            if (n == 0) {
                throw new IllegalStateException("in-place conversion to raw: no unit can move ("
                        + misplaced + " misplaced, " + freeSpareCount + " spare units free)");
            }
            execute(guests, dests, n);
        }
        if (hostOf[0] >= 1 && hostOf[0] < units) {
            // guest unit 0 goes home last, through the journal; it must not sit in another unit's home then,
            // where the raw file would show it after the commit point
            guests[0] = 0;
            dests[0] = freeSpare[--freeSpareCount];
            owner[(int) dests[0]] = 0;
            evacuations++;
            execute(guests, dests, 1);
        }
    }

    /**
     * Evacuates units that sit in blocked homes to free spare units, at a
     * stride through the guest; {@code scan} looks at every unit instead (a
     * round with nothing else to do: only cycles are left).
     */
    private int cut(int[] guests, long[] dests, int n, int max, boolean scan) {
        long stride = Math.max(1, units / Math.max(1, spareUnits));
        long tries = scan ? units : 4L * spareUnits;
        for (long t = 0; t < tries && n < max && freeSpareCount > 0; t++) {
            int g;
            if (scan) {
                g = (int) (1 + t % Math.max(1, units - 1));
            } else {
                g = (int) cursor;
                cursor += stride;
                if (cursor >= units) {
                    cursorPhase = (cursorPhase + 1) % stride;
                    cursor = 1 + cursorPhase;
                }
            }
            if (g <= 0 || g >= units || !misplaced(g) || movedIn[g] == round) {
                continue;
            }
            int o = owner[g];
            if (o < 0 || o == g || movedIn[o] == round) {
                continue;
            }
            if (misplaced(o) && owner[o] < 0) {
                continue; // o can go home directly; it is in the ready queue
            }
            int slot = freeSpare[--freeSpareCount];
            owner[slot] = o;
            movedIn[o] = round;
            guests[n] = o;
            dests[n++] = slot;
            evacuations++;
        }
        return n;
    }

    /** One round: copy, sync, remap (durable), punch the old places. */
    private void execute(int[] guests, long[] dests, int n) throws IOException {
        Integer[] order = new Integer[n];
        for (int i = 0; i < n; i++) {
            order[i] = i;
        }
        Arrays.sort(order, (a, b) -> Long.compare(dests[a], dests[b]));
        int maxRun = (int) Math.max(1, COPY_UNITS_BYTES / unit);
        List<long[]> runs = new ArrayList<>(); // {source unit, destination unit, units}
        for (int i = 0; i < n; ) {
            // a run: consecutive destinations whose sources are consecutive too
            int j = i + 1;
            while (j < n && j - i < maxRun && dests[order[j]] == dests[order[j - 1]] + 1
                    && hostOf[guests[order[j]]] == hostOf[guests[order[j - 1]]] + 1) {
                j++;
            }
            runs.add(new long[]{hostOf[guests[order[i]]], dests[order[i]], j - i});
            i = j;
        }
        copyRuns(runs);
        // no sync here: the driver's remap makes the data durable before any entry points to it
        long[] guestOffsets = new long[n];
        long[] hostOffsets = new long[n];
        for (int i = 0; i < n; i++) {
            guestOffsets[i] = guests[i] * unit;
            hostOffsets[i] = dests[i] * unit;
        }
        rel.remap(guestOffsets, hostOffsets, n);
        long[] freed = new long[n];
        long[] sources = new long[n];
        int punched = 0;
        int cap = spareUnits;
        for (int i = 0; i < n; i++) {
            int g = guests[i];
            long src = hostOf[g];
            sources[i] = src;
            if (owner[(int) src] == g) {
                owner[(int) src] = -1;
            }
            hostOf[g] = dests[i];
            if (dests[i] == g) {
                misplaced--;
                movedBytes += unit;
            }
        }
        for (int i = 0; i < n; i++) {
            long src = sources[i];
            if (src >= spareBase && src < spareBase + spareUnits) {
                freeSpare[freeSpareCount++] = (int) src;
                freed[punched++] = src;
            } else if (src < units && misplaced((int) src) && owner[(int) src] < 0) {
                pushReady((int) src);
                // its unit fills it next round (the queue is short): the write replaces every byte, so a
                // punch would only free blocks to allocate them again
                if (readyCount > cap) {
                    freed[punched++] = src;
                }
            } else {
                freed[punched++] = src;
            }
        }
        Arrays.sort(freed, 0, punched);
        for (int i = 0; i < punched; ) {
            int j = i + 1;
            while (j < punched && freed[j] == freed[j - 1] + 1) {
                j++;
            }
            image.punchHole(freed[i] * unit, (freed[j - 1] - freed[i] + 1) * unit);
            i = j;
        }
        copies += n;
        rounds++;
        clock.update("move", movedBytes, totalBytes);
    }

    /**
     * Copies the runs: sources read in parallel (a round's sources are
     * scattered, and one reader waits on each in turn; qemu-img keeps eight
     * requests in flight too), in batches of at most {@link #BATCH_BYTES},
     * then written in destination order.
     */
    private void copyRuns(List<long[]> runs) throws IOException {
        for (int first = 0; first < runs.size(); ) {
            int last = first;
            long bytes = 0;
            while (last < runs.size() && (last == first || bytes + runs.get(last)[2] * unit <= BATCH_BYTES)) {
                bytes += runs.get(last)[2] * unit;
                last++;
            }
            if (batch == null || batch.length < bytes) {
                batch = new byte[(int) Math.max(bytes, Math.min(BATCH_BYTES, COPY_UNITS_BYTES))];
            }
            List<Future<?>> reads = new ArrayList<>();
            long at = 0;
            for (int r = first; r < last; r++) {
                long[] run = runs.get(r);
                ByteBuffer dst = ByteBuffer.wrap(batch, (int) at, (int) (run[2] * unit));
                long from = run[0] * unit;
                reads.add(readers().submit(() -> {
                    image.read(dst, from);
                    return null;
                }));
                at += run[2] * unit;
            }
            for (Future<?> f : reads) {
                try {
                    f.get();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new IOException("interrupted while reading units", e);
                } catch (ExecutionException e) {
                    if (e.getCause() instanceof IOException io) {
                        throw io;
                    }
                    throw new IOException("reading units: " + e.getCause(), e.getCause());
                }
            }
            at = 0;
            for (int r = first; r < last; r++) {
                long[] run = runs.get(r);
                writeRun((int) at, run[1], (int) run[2]);
                at += run[2] * unit;
            }
            first = last;
        }
    }

    private ExecutorService readers() {
        if (readers == null) {
            readers = Executors.newFixedThreadPool(READERS, r -> {
                Thread t = new Thread(r, "diskmorph-raw-reader");
                t.setDaemon(true);
                return t;
            });
        }
        return readers;
    }

    /**
     * Copies {@code count} units from host unit {@code from} to {@code to}.
     * Blocks of zeros (4 KiB, as qemu-img convert's default -S) are punched
     * instead of written, so the raw file is as sparse as a copy would be.
     */
    private void writeRun(int offset, long to, int count) throws IOException {
        int len = (int) (count * unit);
        byte[] a = batch;
        int block = (int) Math.min(unit, ZERO_BLOCK);
        long at = to * unit - offset;
        for (int i = offset; i < offset + len; ) {
            boolean zero = ToRaw.allZero(a, i, i + block);
            int j = i + block;
            while (j < offset + len && ToRaw.allZero(a, j, j + block) == zero) {
                j += block;
            }
            if (zero) {
                image.punchHole(at + i, j - i);
            } else {
                image.write(ByteBuffer.wrap(a, i, j - i), at + i);
            }
            i = j;
        }
    }

    /**
     * The home of a unit that reads zeros, holding no other unit's data
     * (guest unit 0 may still sit there: it moves last, through the journal).
     */
    private boolean freeZeroHome(int g) {
        return hostOf[g] < 0 && owner[g] < 0;
    }

    /** Punches the homes of units that read zeros (in [unit, virtual size)) where the file holds data. */
    void punchZeroHomes(long virtualSize) throws IOException {
        for (int g = 1; g < units; ) {
            if (!freeZeroHome(g)) {
                g++;
                continue;
            }
            int from = g;
            while (g < units && freeZeroHome(g)) {
                g++;
            }
            long end = Math.min(virtualSize, g * unit);
            long pos = from * unit;
            while (pos < end) {
                long data = image.nextData(pos);
                if (data >= end) {
                    break;
                }
                long hole = Math.min(end, image.nextHole(data));
                if (hole <= data) {
                    break; // the file ends before the virtual size: nextData answers its end, nothing is left
                }
                image.punchHole(data, hole - data);
                pos = hole;
            }
        }
        image.sync();
    }
}
