package io.diskmorph.image.cache;

import io.diskmorph.storage.MemoryStorage;
import io.diskmorph.testing.RecordingStorage;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The shared metadata cache: contents, eviction with write-back, and write ordering by dependencies. */
class MetadataCacheTest {
    private static final int TABLE = 64;

    /** A table of eight big-endian longs. */
    static final class Words extends CachedTable {
        final long[] words = new long[TABLE / 8];

        @Override
        protected void read(ByteBuffer bytes) {
            bytes.asLongBuffer().get(words);
        }

        @Override
        protected void write(ByteBuffer bytes) {
            bytes.asLongBuffer().put(words);
        }
    }

    private static MetadataCache<Words> cache(SyncTracker file, int capacity) {
        return new MetadataCache<>("test table", file, TABLE, capacity, Words::new);
    }

    /**
     * A cache clipped at an end (VDI's block map, whose last page is
     * followed by guest data): the bytes past the end read as zeros, and no
     * write, by flush or eviction, reaches them.
     */
    @Test
    void clippedTablesNeverReadOrWritePastTheEnd() throws IOException {
        MemoryStorage m = new MemoryStorage("m");
        byte[] fill = new byte[4 * TABLE];
        java.util.Arrays.fill(fill, (byte) 0x5a);
        m.write(ByteBuffer.wrap(fill), 0);
        RecordingStorage r = new RecordingStorage(m);
        MetadataCache<Words> c = cache(r.tracker(), 2);
        long end = TABLE + 20; // the second table's first 20 bytes
        c.clipAt(end);
        Words w = c.get(TABLE);
        assertEquals(0x5a5a5a5a5a5a5a5aL, w.words[0]);
        assertEquals(0x5a5a5a5a00000000L, w.words[2], "bytes past the end read as zeros");
        assertEquals(0, w.words[7]);
        w.words[0] = 1;
        w.words[7] = 7; // past the end: kept in memory, never written
        c.markDirty(w);
        c.flush();
        c.get(2 * TABLE); // evicts nothing yet
        c.markDirty(c.get(TABLE));
        c.get(3 * TABLE); // evicts the dirty clipped table
        ByteBuffer file = m.readBytes(0, 4 * TABLE);
        assertEquals(1, file.getLong(TABLE));
        for (long at = end; at < 4 * TABLE; at++) {
            assertEquals(0x5a, file.get((int) at), "byte " + at + " past the end is untouched");
        }
    }

    @Test
    void behavesLikeAMapOverTheFileUnderRandomUse() throws IOException {
        MemoryStorage m = new MemoryStorage("m");
        SyncTracker file = new SyncTracker(m);
        MetadataCache<Words> c = cache(file, 5);
        Map<Long, Long> model = new HashMap<>(); // table offset -> value of word 0 as the driver last set it
        Random r = new Random(7);
        for (int i = 0; i < 20_000; i++) {
            long at = (long) r.nextInt(40) * TABLE;
            switch (r.nextInt(5)) {
                case 0 -> {
                    Words w = c.create(at);
                    assertEquals(0, w.words[0]);
                    w.words[0] = r.nextLong();
                    c.markDirty(w);
                    model.put(at, w.words[0]);
                }
                case 1, 2 -> {
                    Words w = c.get(at);
                    assertEquals(model.getOrDefault(at, 0L), w.words[0], "table at " + at);
                    assertEquals(at, w.hostOffset());
                }
                case 3 -> {
                    Words w = c.get(at);
                    w.words[0] = r.nextLong();
                    c.markDirty(w);
                    model.put(at, w.words[0]);
                }
                default -> {
                    if (r.nextInt(50) == 0) {
                        c.flush();
                        for (Map.Entry<Long, Long> e : model.entrySet()) {
                            assertEquals(e.getValue(), m.readBytes(e.getKey(), 8).getLong(0), "flushed " + e.getKey());
                        }
                    } else {
                        int count = 1 + r.nextInt(2);
                        Words w = c.getRun(at, count);
                        assertEquals(model.getOrDefault(at, 0L), w.words[0]);
                    }
                }
            }
        }
    }

    @Test
    void theTablesLastReturnedStayCached() throws IOException {
        MetadataCache<Words> c = cache(new SyncTracker(new MemoryStorage("m")), 2);
        for (int i = 0; i < 10; i++) {
            Words held = c.get(i * TABLE);
            Words next = c.create((i + 100) * TABLE);
            assertSame(held, c.peek(i * TABLE), "a held table survives one more load");
            assertNotNull(next);
        }
    }

    @Test
    void evictingADirtyTableFlushesWhatItDependsOnFirst() throws IOException {
        RecordingStorage rec = new RecordingStorage(new MemoryStorage("m"));
        MetadataCache<Words> refcounts = cache(rec.tracker(), 4);
        MetadataCache<Words> tables = cache(rec.tracker(), 2);
        refcounts.create(1000 * TABLE); // a new table is dirty
        tables.create(0);
        tables.dependOn(refcounts);
        tables.get(TABLE);
        tables.get(2 * TABLE); // evicts the dirty table at 0
        assertEquals(List.of("w " + 1000 * TABLE, "sync", "w 0"), rec.ops());
        rec.events.clear();
        tables.flush();
        assertEquals(List.of("sync"), rec.ops(), "the written table made durable, the dependency forgotten");
    }

    @Test
    void aFlushWritesDependenciesThenTablesInFileOrder() throws IOException {
        RecordingStorage rec = new RecordingStorage(new MemoryStorage("m"));
        SyncTracker file = rec.tracker();
        MetadataCache<Words> l2 = cache(file, 8);
        MetadataCache<Words> l1 = cache(file, 2);
        file.write(ByteBuffer.allocate(8), 1 << 20); // guest data
        l2.dependOn(file);
        l2.create(5 * TABLE);
        l2.create(3 * TABLE);
        l1.dependOn(l2);
        l1.create(0);
        l1.flush();
        assertEquals(List.of("w " + (1 << 20), "sync", "w " + 3 * TABLE, "w " + 5 * TABLE, "sync", "w 0", "sync"),
                rec.ops());
    }

    @Test
    void misuseFailsLoudly() throws IOException {
        SyncTracker file = new SyncTracker(new MemoryStorage("m"));
        MetadataCache<Words> a = cache(file, 2);
        MetadataCache<Words> b = cache(file, 2);
        Words w = a.create(0);
        assertThrows(IllegalStateException.class, a::clear, "dirty tables are not dropped");
        a.flush();
        a.clear();
        assertThrows(IllegalStateException.class, () -> a.markDirty(w));
        a.dependOn(b);
        b.dependOn(a);
        IllegalStateException e = assertThrows(IllegalStateException.class, a::flush);
        assertTrue(e.getMessage().contains("cycle"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> cache(file, 1));
    }

    /**
     * Tables of several files in one cache (VMDK extents): the same offset in
     * two files is two tables, each read from and written back to its own
     * file, and the files' writes wait for the dependencies like one file's.
     */
    @Test
    void keysTablesByFileAndOffset() throws IOException {
        RecordingStorage a = new RecordingStorage(new MemoryStorage("a"));
        RecordingStorage b = new RecordingStorage(new MemoryStorage("b"));
        ByteBuffer word = ByteBuffer.allocate(8);
        a.write(word.clear().putLong(0, 11), 0);
        b.write(word.clear().putLong(0, 22), 0);
        a.events.clear();
        b.events.clear();
        MetadataCache<Words> c = new MetadataCache<>("test table", TABLE, 2, Words::new);
        assertEquals(0, c.addFile(a.tracker()));
        assertEquals(1, c.addFile(b.tracker()));
        assertEquals(11, c.get(0, 0).words[0]);
        assertEquals(22, c.get(1, 0).words[0]);
        assertEquals(11, c.get(0, 0).words[0], "still cached, not taken for file b's table");
        Words t = c.get(1, 0);
        t.words[1] = 7;
        c.markDirty(t);
        RecordingStorage data = new RecordingStorage(new MemoryStorage("data"));
        SyncTracker dataTracker = data.tracker();
        dataTracker.write(word.clear(), 0);
        c.dependOn(dataTracker);
        c.get(0, 0);
        c.get(0, TABLE); // evicts file b's dirty table, the least recently used: the dependency first
        assertEquals(List.of("w 0", "sync"), data.ops());
        assertEquals(List.of("w 0"), b.ops());
        assertTrue(a.ops().isEmpty(), "nothing written to file a");
        ByteBuffer back = ByteBuffer.allocate(8);
        b.read(back, 8);
        assertEquals(7, back.getLong(0));
        c.flush();
        assertEquals(List.of("w 0", "sync"), b.ops(), "flush syncs the file written");
        assertTrue(a.ops().isEmpty(), "and leaves the clean file alone");
    }
}
