package io.diskmorph.format.vpc;

import io.diskmorph.image.CreateSpec;
import io.diskmorph.image.DiskImage;
import io.diskmorph.image.OpenContext;
import io.diskmorph.storage.MemoryStorage;
import io.diskmorph.testing.RecordingStorage;
import io.diskmorph.testing.RecordingStorage.Event;
import org.junit.jupiter.api.Test;

import java.nio.ByteBuffer;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The write order of a dynamic VHD's new blocks: no write ever lands on the
 * footer that ends the file as last synced (the new footer is durable at
 * the new end before the bitmap overwrites the old one; qemu's own order,
 * bitmap first, fails this), and no BAT write precedes the sync of the data
 * it may point at.
 */
class VpcWriteTest {
    @Test
    void aFooterEndsTheFileAndBatEntriesFollowTheirData() throws Exception {
        RecordingStorage s = new RecordingStorage(new MemoryStorage("rec"));
        long size = 64L << 20;
        byte[] mirror = new byte[(int) size];
        try (DiskImage img = new VpcFormat().create(s, new CreateSpec(size, Map.of("force_size", "on"), null, null),
                new OpenContext(null, false, null, false))) {
            long batStart = 1536;
            long batEnd = batStart + 512;
            long length = s.size();
            long durableLength = length;
            Random rnd = new Random(7);
            for (int round = 0; round < 4; round++) {
                s.events.clear();
                for (int i = 0; i < 12; i++) {
                    byte[] d = new byte[1 + rnd.nextInt(600_000)];
                    rnd.nextBytes(d);
                    long at = rnd.nextLong(size - d.length);
                    img.write(ByteBuffer.wrap(d), at);
                    System.arraycopy(d, 0, mirror, (int) at, d.length);
                }
                img.flush();
                int lastData = -1;
                int lastSync = -1;
                for (int i = 0; i < s.events.size(); i++) {
                    Event e = s.events.get(i);
                    if (e.sync()) {
                        lastSync = i;
                        durableLength = length;
                        continue;
                    }
                    long end = e.offset() + e.length();
                    assertTrue(end <= durableLength - 512 || e.offset() >= durableLength,
                            "event " + i + " " + e + " overwrites the footer that ends the synced file ("
                                    + durableLength + ")");
                    if (e.offset() >= batStart && e.offset() < batEnd) {
                        assertTrue(lastData < lastSync, "BAT write " + i + " after its data's sync");
                    } else {
                        lastData = i;
                    }
                    length = Math.max(length, end);
                }
                assertTrue(s.events.getLast().sync(), "the flush ends synced");
            }
            byte[] back = new byte[(int) size];
            img.read(ByteBuffer.wrap(back), 0);
            assertArrayEquals(mirror, back);
        }
    }
}
