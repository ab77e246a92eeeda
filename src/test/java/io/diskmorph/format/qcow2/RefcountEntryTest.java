package io.diskmorph.format.qcow2;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.Random;
import org.junit.jupiter.api.Test;

/** The refcount entry codec's search for the last used entry, against entry-by-entry search, for every width. */
class RefcountEntryTest {
    private static int bruteForce(byte[] block, int order) {
        int entries = block.length * 8 >>> order;
        for (int i = entries - 1; i >= 0; i--) {
            if (Refcounts.entry(block, i, order) != 0) {
                return i;
            }
        }
        return -1;
    }

    @Test
    void lastUsedEntryMatchesEntryByEntrySearchForEveryWidth() {
        Random r = new Random(7);
        for (int order = 0; order <= 6; order++) {
            int entries = 512 * 8 >>> order;
            byte[] block = new byte[512];
            assertEquals(-1, Refcounts.lastUsedEntry(block, order), "empty block, order " + order);
            for (int trial = 0; trial < 300; trial++) {
                java.util.Arrays.fill(block, (byte) 0);
                int used = r.nextInt(4);
                for (int k = 0; k < used; k++) {
                    long max = order == 6 ? Long.MAX_VALUE : (1L << (1 << order)) - 1;
                    long v = 1 + (long) (r.nextDouble() * max);
                    // values with only low or only high bits set exercise every byte of a wide entry
                    if (r.nextBoolean() && order >= 4) {
                        v = 1L << r.nextInt(1 << order);
                    }
                    Refcounts.setEntry(block, r.nextInt(entries), order, v);
                }
                if (r.nextInt(10) == 0) {
                    Refcounts.setEntry(block, entries - 1, order, 1); // the very last entry
                }
                assertEquals(bruteForce(block, order), Refcounts.lastUsedEntry(block, order),
                        "order " + order + " trial " + trial);
            }
        }
    }
}
