package io.diskmorph.format.vhdx;

import io.diskmorph.storage.MemoryStorage;
import org.junit.jupiter.api.Test;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * The log overlay folds a sequence's writes into pieces once: reads through
 * it equal the writes applied one after the other to a copy of the file
 * (later writes win), for random sequences of data sectors and zero ranges
 * that overlap each other in every way, read at random ranges.
 */
class VhdxLogOverlayTest {
    private static final int SECTOR = VhdxLog.SECTOR;
    private static final int FILE = 64 * SECTOR;
    /** Where the fake log's data sectors lie in the file (the writes never touch it). */
    private static final int LOG_AT = 48 * SECTOR;

    @Test
    void readsEqualTheWritesAppliedInOrder() throws Exception {
        Random r = new Random(42);
        for (int round = 0; round < 200; round++) {
            byte[] file = new byte[FILE];
            r.nextBytes(file);
            List<VhdxLog.Write> writes = new ArrayList<>();
            byte[] expected = file.clone();
            int count = 1 + r.nextInt(20);
            for (int i = 0; i < count; i++) {
                long at = (long) r.nextInt(LOG_AT / SECTOR) * SECTOR;
                if (r.nextBoolean()) {
                    long len = (long) (1 + r.nextInt(8)) * SECTOR;
                    len = Math.min(len, LOG_AT - at);
                    writes.add(new VhdxLog.Write(at, len, -1, 0, 0));
                    Arrays.fill(expected, (int) at, (int) (at + len), (byte) 0);
                } else {
                    int logSector = LOG_AT + r.nextInt(16) * SECTOR;
                    long leading = r.nextLong();
                    int trailing = r.nextInt();
                    writes.add(new VhdxLog.Write(at, SECTOR, logSector, leading, trailing));
                    ByteBuffer s = ByteBuffer.wrap(file, logSector, SECTOR).slice().order(ByteOrder.LITTLE_ENDIAN);
                    byte[] sector = new byte[SECTOR];
                    s.get(0, sector);
                    ByteBuffer.wrap(sector).order(ByteOrder.LITTLE_ENDIAN).putLong(0, leading)
                            .putInt(SECTOR - 4, trailing);
                    System.arraycopy(sector, 0, expected, (int) at, SECTOR);
                }
            }
            VhdxLog.Overlay o = new VhdxLog.Overlay(MemoryStorage.of("f", file),
                    new VhdxLog.Sequence(writes, 0, 0, 1, 1));
            assertEquals(FILE, o.size());
            for (int i = 0; i < 50; i++) {
                int a = r.nextInt(FILE);
                int n = 1 + r.nextInt(FILE - a);
                ByteBuffer b = ByteBuffer.allocate(n + 7).position(7);
                o.read(b, a);
                byte[] got = Arrays.copyOfRange(b.array(), 7, 7 + n);
                assertArrayEquals(Arrays.copyOfRange(expected, a, a + n), got, "round " + round + " read " + a
                        + "+" + n + " of " + writes);
            }
        }
    }
}
