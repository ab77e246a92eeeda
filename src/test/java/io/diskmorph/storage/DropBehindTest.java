package io.diskmorph.storage;

import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/** Which ranges drop-behind hands to the disk and drops, in which order; when it chooses to. */
class DropBehindTest {
    private static final long M = 1 << 20;
    private static final long K = 1 << 10;
    private static final long WINDOW = 8 * M;

    /** The calls as "start offset+length" and "drop offset+length", in order. */
    private final List<String> calls = new ArrayList<>();
    private final DropBehind dropBehind = new DropBehind(new DropBehind.Calls() {
        @Override
        public void startWriteback(long offset, long length) {
            calls.add("start " + offset + "+" + length);
        }

        @Override
        public void waitAndDrop(long offset, long length) {
            calls.add("drop " + offset + "+" + length);
        }
    }, WINDOW, DropBehind.Mode.ON, () -> 0);

    @Test
    void contiguousWritesStartInStepsAndTheOldestAreDroppedPastTheWindow() throws IOException {
        for (long pos = 0; pos < 12 * M; pos += 256 * K) {
            dropBehind.written(pos, 256 * K, 0);
        }
        assertEquals(List.of("start 0+" + 2 * M, "start " + 2 * M + "+" + 2 * M, "start " + 4 * M + "+" + 2 * M,
                "start " + 6 * M + "+" + 2 * M, "start " + 8 * M + "+" + 2 * M, "drop 0+" + 2 * M,
                "start " + 10 * M + "+" + 2 * M, "drop " + 2 * M + "+" + 2 * M), calls,
                "10 MiB under writeback is more than the window: the oldest 2 MiB are waited for and dropped");
        assertEquals(WINDOW, dropBehind.bytesUnderWriteback());
    }

    @Test
    void byteGranularAppendsAreCutAtMultiplesOfTheStep() throws IOException {
        // compressed clusters: appended at byte offsets; a cut elsewhere would leave a folio or a page
        // that two ranges share, and neither would drop it
        long pos = 5 * M;
        for (int i = 0; i < 40; i++) {
            dropBehind.written(pos, 30_001, 0);
            pos += 30_001;
        }
        assertEquals(List.of("start " + 5 * M + "+" + M), calls, "up to 6 MiB, once the writes pass it");
        dropBehind.written(pos, 2 * M, 0);
        assertEquals(List.of("start " + 5 * M + "+" + M, "start " + 6 * M + "+" + 2 * M), calls,
                "the gathered tail goes on from where the last writeback ended");
    }

    @Test
    void smallWritesBehindAreLeftAloneAndOthersElsewhereStartANewRange() throws IOException {
        dropBehind.written(10 * M, 512 * K, 0);
        dropBehind.written(0, 4 * K, 0); // a header, an L2 table: rewritten later, left to the page cache
        dropBehind.written(10 * M + 512 * K, 512 * K, 0); // the data goes on
        dropBehind.written(11 * M, 256 * K, 0);
        dropBehind.written(11 * M + 356 * K, 4 * K, 0); // past a small hole: the same range
        assertEquals(List.of(), calls, "no multiple of the step passed yet");
        dropBehind.written(8 * M, 64 * K, 0); // a qcow2 L2 table or refcount block written behind: left alone
        assertEquals(List.of(), calls);
        dropBehind.written(5 * M, 256 * K, 0); // a large write behind (out of order): a new range
        assertEquals(List.of("start " + 10 * M + "+" + (M + 360 * K)), calls);
        dropBehind.written(5 * M + 256 * K, 2 * M, 0);
        dropBehind.written(50 * M, 4 * K, 0); // far ahead: a new range
        assertEquals(List.of("start " + 10 * M + "+" + (M + 360 * K), "start " + 5 * M + "+" + M,
                "start " + 6 * M + "+" + (M + 256 * K)), calls);
        assertEquals((M + 260 * K) + M + (M + 256 * K), dropBehind.bytesUnderWriteback(),
                "written bytes, holes not counted");
    }

    @Test
    void theWindowCountsWrittenBytesNotHoles() throws IOException {
        for (long pos = 0; pos < 64 * M; pos += 2 * M) { // 1 MiB written in every 2 MiB
            dropBehind.written(pos, M, 0);
        }
        assertEquals(31, calls.stream().filter(c -> c.startsWith("start")).count());
        assertEquals(31 - 8, calls.stream().filter(c -> c.startsWith("drop")).count(),
                "8 ranges of 1 MiB written fit the window");
        assertEquals(WINDOW, dropBehind.bytesUnderWriteback());
    }

    /**
     * A copy of {@code bytes} in 1 MiB writes, each timed as the page cache
     * would take it; {@code log} gets the calls, {@code modes} "dropping" or
     * "keeping" after each write.
     */
    private static DropBehind copy(long bytes, double keepingNanosPerByte, double droppingNanosPerByte,
                                   double diskNanosPerByte, List<String> log, List<String> modes)
            throws IOException {
        return copy(bytes, pos -> keepingNanosPerByte, droppingNanosPerByte, diskNanosPerByte, log, modes);
    }

    /** {@link #copy}, where keeping costs what {@code keepingNanosPerByte} says at each offset. */
    private static DropBehind copy(long bytes, java.util.function.LongToDoubleFunction keepingNanosPerByte,
                                   double droppingNanosPerByte, double diskNanosPerByte, List<String> log,
                                   List<String> modes) throws IOException {
        long[] now = {0};
        DropBehind[] d = new DropBehind[1];
        d[0] = new DropBehind(new DropBehind.Calls() {
            @Override
            public void startWriteback(long offset, long length) {
                log.add("start " + offset);
            }

            @Override
            public void waitAndDrop(long offset, long length) {
                now[0] += (long) (length * diskNanosPerByte);
                log.add("drop " + offset);
            }
        }, 8 * M, DropBehind.Mode.AUTO, () -> now[0]);
        for (long pos = 0; pos < bytes; pos += M) {
            double cost = d[0].dropping() ? droppingNanosPerByte : keepingNanosPerByte.applyAsDouble(pos);
            d[0].written(pos, M, (long) (M * cost));
            modes.add(d[0].dropping() ? "dropping" : "keeping");
        }
        return d[0];
    }

    @Test
    void autoKeepsThePageCacheWhereWritingIntoItIsFast() throws IOException {
        List<String> log = new ArrayList<>();
        List<String> modes = new ArrayList<>();
        DropBehind d = copy(256 * M, 0.15, 0.15, 0.6, log, modes); // backed memory: 7 GB/s
        assertFalse(d.dropping());
        assertFalse(modes.contains("dropping"));
        assertEquals(List.of(), log, "no writeback started");
    }

    @Test
    void autoDropsBehindWhereTheDiskIsFasterThanFreshPages() throws IOException {
        List<String> log = new ArrayList<>();
        List<String> modes = new ArrayList<>();
        // pages that fault on the host: 1.4 ns per byte; dropping: 0.15 plus the disk's 0.6
        DropBehind d = copy(1024 * M, 1.4, 0.15, 0.6, log, modes);
        assertTrue(d.dropping());
        int block = (int) (DropBehind.BLOCK / M);
        assertEquals(List.of(block - 1, 4 * block - 1, 5 * block - 1, 10 * block - 1, 11 * block - 1,
                        20 * block - 1, 21 * block - 1), changes(modes),
                "dropping after the first block; keeping tried again after 2, 4 and 8 blocks timed dropping"
                        + " (the first after a switch is not timed), one block each, each failing");
        assertEquals("start " + DropBehind.BLOCK, log.get(0), "gathering from the first write dropped behind");
    }

    @Test
    void autoKeepsAgainWhenOnlyTheFirstPagesFaulted() throws IOException {
        List<String> log = new ArrayList<>();
        List<String> modes = new ArrayList<>();
        // memory handed back just before the copy: its first 96 MiB fault (2.5 ns per byte), the rest is backed
        DropBehind d = copy(512 * M, pos -> pos < 96 * M ? 2.5 : 0.15, 0.15, 0.6, log, modes);
        assertFalse(d.dropping());
        int block = (int) (DropBehind.BLOCK / M);
        assertEquals(List.of(block - 1, 4 * block - 1), changes(modes),
                "dropping after the first block, keeping again from the first try on, after 2 blocks timed");
    }

    /** The indexes at which the mode changed. */
    private static List<Integer> changes(List<String> modes) {
        List<Integer> changes = new ArrayList<>();
        for (int i = 0; i < modes.size(); i++) {
            if (!modes.get(i).equals(i == 0 ? "keeping" : modes.get(i - 1))) {
                changes.add(i);
            }
        }
        return changes;
    }

    @Test
    void autoStopsDroppingWhenWaitingForTheDiskCostsMore() throws IOException {
        List<String> log = new ArrayList<>();
        List<String> modes = new ArrayList<>();
        // a slow page cache (0.6 ns per byte) over a slower disk (2 ns per byte)
        DropBehind d = copy(256 * M, 0.6, 0.15, 2, log, modes);
        assertFalse(d.dropping());
        int on = modes.indexOf("dropping");
        int off = modes.subList(on, modes.size()).indexOf("keeping") + on;
        assertEquals(DropBehind.BLOCK / M - 1, on, "tried after the first block");
        assertEquals(3 * DropBehind.BLOCK / M - 1, off, "left after the second block timed dropping");
        assertFalse(modes.subList(off, modes.size()).contains("dropping"), "not tried again: it cost more");
        assertEquals("start " + (3 * DropBehind.BLOCK - 2 * M), log.get(log.size() - 2),
                "no writeback started after that");
    }

    @Test
    void failuresReachTheWriter() throws IOException {
        DropBehind failing = new DropBehind(new DropBehind.Calls() {
            @Override
            public void startWriteback(long offset, long length) {
            }

            @Override
            public void waitAndDrop(long offset, long length) throws IOException {
                throw new NativeFs.ErrnoException("sync_file_range", "f", 5); // EIO: the data did not reach the disk
            }
        }, WINDOW, DropBehind.Mode.ON, () -> 0);
        for (long pos = 0; pos < WINDOW; pos += 2 * M) {
            failing.written(pos, 2 * M, 0);
        }
        assertThrows(NativeFs.ErrnoException.class, () -> failing.written(WINDOW, 2 * M, 0), "the window is full");
        assertEquals(WINDOW, failing.bytesUnderWriteback(), "the failed range is no longer counted");
    }
}
