package io.diskmorph.storage;

import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/** Which ranges drop-behind hands to the disk and drops, in which order. */
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
    }, WINDOW);

    @Test
    void contiguousWritesStartInStepsAndTheOldestAreDroppedPastTheWindow() throws IOException {
        for (long pos = 0; pos < 12 * M; pos += 256 * K) {
            dropBehind.written(pos, 256 * K);
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
            dropBehind.written(pos, 30_001);
            pos += 30_001;
        }
        assertEquals(List.of("start " + 5 * M + "+" + M), calls, "up to 6 MiB, once the writes pass it");
        dropBehind.written(pos, 2 * M);
        assertEquals(List.of("start " + 5 * M + "+" + M, "start " + 6 * M + "+" + 2 * M), calls,
                "the gathered tail goes on from where the last writeback ended");
    }

    @Test
    void smallWritesBehindAreLeftAloneAndOthersElsewhereStartANewRange() throws IOException {
        dropBehind.written(10 * M, 512 * K);
        dropBehind.written(0, 4 * K); // a header, an L2 table: rewritten later, left to the page cache
        dropBehind.written(10 * M + 512 * K, 512 * K); // the data goes on
        dropBehind.written(11 * M, 256 * K);
        dropBehind.written(11 * M + 356 * K, 4 * K); // past a small hole: the same range
        assertEquals(List.of(), calls, "no multiple of the step passed yet");
        dropBehind.written(5 * M, 64 * K); // a large write behind (out of order): a new range
        assertEquals(List.of("start " + 10 * M + "+" + (M + 360 * K)), calls);
        dropBehind.written(5 * M + 64 * K, 2 * M);
        dropBehind.written(50 * M, 4 * K); // far ahead: a new range
        assertEquals(List.of("start " + 10 * M + "+" + (M + 360 * K), "start " + 5 * M + "+" + M,
                "start " + 6 * M + "+" + (M + 64 * K)), calls);
        assertEquals((M + 260 * K) + M + (M + 64 * K), dropBehind.bytesUnderWriteback(),
                "written bytes, holes not counted");
    }

    @Test
    void theWindowCountsWrittenBytesNotHoles() throws IOException {
        for (long pos = 0; pos < 64 * M; pos += 2 * M) { // 1 MiB written in every 2 MiB
            dropBehind.written(pos, M);
        }
        assertEquals(31, calls.stream().filter(c -> c.startsWith("start")).count());
        assertEquals(31 - 8, calls.stream().filter(c -> c.startsWith("drop")).count(),
                "8 ranges of 1 MiB written fit the window");
        assertEquals(WINDOW, dropBehind.bytesUnderWriteback());
    }

    @Test
    void failuresReachTheWriter() {
        DropBehind failing = new DropBehind(new DropBehind.Calls() {
            @Override
            public void startWriteback(long offset, long length) throws IOException {
                throw new NativeFs.ErrnoException("sync_file_range", "f", 5);
            }

            @Override
            public void waitAndDrop(long offset, long length) {
            }
        }, WINDOW);
        assertThrows(NativeFs.ErrnoException.class, () -> failing.written(0, 2 * M));
    }
}
