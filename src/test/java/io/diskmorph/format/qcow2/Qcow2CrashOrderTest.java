package io.diskmorph.format.qcow2;

import com.fasterxml.jackson.databind.JsonNode;
import io.diskmorph.image.DiskImage;
import io.diskmorph.image.Images;
import io.diskmorph.image.OpenContext;
import io.diskmorph.storage.ForwardingStorage;
import io.diskmorph.storage.MemoryStorage;
import io.diskmorph.storage.Storage;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Crash points: every write and sync of a session is recorded; the file as
 * it would be after a crash at each sync point (plus a random part of the
 * next batch, which may reach the disk in any order) must show no
 * corruption in qemu-img check. Leaks are allowed.
 */
class Qcow2CrashOrderTest {
    @TempDir
    Path dir;

    /** A storage that records writes, punches and syncs in order. */
    static final class RecordingStorage extends ForwardingStorage {
        /** {offset, data} for writes, {offset, length as 8 bytes, null marker} for punches, null for sync. */
        final List<Object[]> ops = new ArrayList<>();
        final MemoryStorage memory;

        RecordingStorage(MemoryStorage inner) {
            super(inner);
            this.memory = inner;
        }

        @Override
        public void write(ByteBuffer src, long position) throws IOException {
            byte[] b = new byte[src.remaining()];
            src.duplicate().get(b);
            ops.add(new Object[]{position, b});
            inner.write(src, position);
        }

        @Override
        public void sync() {
            ops.add(null);
        }

        @Override
        public void truncate(long size) throws IOException {
            ops.add(new Object[]{size, "truncate"});
            inner.truncate(size);
        }

        @Override
        public void punchHole(long offset, long length) throws IOException {
            ops.add(new Object[]{offset, new byte[(int) length]});
            inner.punchHole(offset, length);
        }

        @Override
        public boolean isReadOnly() {
            return false;
        }

        @Override
        public void close() {
        }
    }

    private static void apply(MemoryStorage m, Object[] op) throws IOException {
        if (op[1] instanceof String) {
            m.truncate((Long) op[0]);
        } else {
            m.write(ByteBuffer.wrap((byte[]) op[1]), (Long) op[0]);
        }
    }

    /**
     * Replays the session up to each sync point (and a torn part of the next
     * batch): qemu-img check finds no corruption, and guest bytes the session
     * never wrote still read as before.
     */
    private void assertEveryCrashPointConsistent(byte[] initial, List<Object[]> ops, boolean[] touched)
            throws Exception {
        Path file = dir.resolve("crash.qcow2");
        Path raw = dir.resolve("crash.raw");
        Files.write(file, initial);
        Qemu.toRaw(file, "qcow2", raw);
        byte[] before = Files.readAllBytes(raw);
        List<Integer> syncs = new ArrayList<>();
        for (int i = 0; i < ops.size(); i++) {
            if (ops.get(i) == null) {
                syncs.add(i);
            }
        }
        syncs.add(ops.size());
        assertTrue(syncs.size() > 3, "the session synced");
        Random r = new Random(1);
        int start = 0;
        for (int s : syncs) {
            for (int torn = 0; torn < 3; torn++) {
                MemoryStorage m = MemoryStorage.of("crash", initial);
                for (int i = 0; i < start; i++) {
                    if (ops.get(i) != null) {
                        apply(m, ops.get(i));
                    }
                }
                // writes of the interrupted batch reach the disk in any subset: a random one, or its later half
                for (int i = start; i < s; i++) {
                    boolean lands = torn == 1 ? r.nextBoolean() : torn == 2 && i >= (start + s) / 2;
                    if (ops.get(i) != null && lands) {
                        apply(m, ops.get(i));
                    }
                }
                Files.write(file, m.toByteArray());
                Qemu.Result c = Qemu.check(file, "qcow2");
                JsonNode j = c.json();
                assertEquals(0, j.path("corruptions").asLong(0), "crash before op " + s + " (torn=" + torn
                        + "): " + c.out() + c.err());
                assertEquals(0, j.path("check-errors").asLong(0), c.out());
                Qemu.toRaw(file, "qcow2", raw);
                byte[] after = Files.readAllBytes(raw);
                for (int i = 0; i < before.length; i++) {
                    if (!touched[i] && before[i] != after[i]) {
                        throw new AssertionError("crash before op " + s + " (torn=" + torn + ") changed guest byte "
                                + i + ", which the session never wrote");
                    }
                }
            }
            start = s + 1;
        }
    }

    private void runSession(byte[] initial, long seed, int ops, long cluster) throws Exception {
        RecordingStorage rec = new RecordingStorage(MemoryStorage.of("image", initial));
        try (DiskImage img = Images.open(rec, "qcow2", false)) {
            runSession(img, rec, initial, seed, ops, cluster, 3 * cluster);
        }
    }

    private void runSession(DiskImage img, RecordingStorage rec, byte[] initial, long seed, int ops, long cluster,
                            long maxLength) throws Exception {
        Random r = new Random(seed);
        boolean[] touched;
        try (img) {
            long size = img.virtualSize();
            touched = new boolean[(int) size];
            for (int i = 0; i < ops; i++) {
                long off = r.nextLong(size / cluster) * cluster + (r.nextBoolean() ? 0 : r.nextInt(1000));
                int len = (int) Math.min(size - off, 1 + r.nextInt((int) maxLength));
                java.util.Arrays.fill(touched, (int) off, (int) off + len, true);
                if (r.nextInt(4) == 0) {
                    img.writeZeroes(off, len, r.nextBoolean());
                } else {
                    byte[] data = new byte[len];
                    r.nextBytes(data);
                    img.write(ByteBuffer.wrap(data), off);
                }
                if (i % 15 == 14) {
                    img.flush();
                }
            }
        }
        assertEveryCrashPointConsistent(initial, rec.ops, touched);
    }

    @Test
    void snapshotCopyOnWriteAndUnmapSurviveCrashes() throws Exception {
        Path img = dir.resolve("s.qcow2");
        Qemu.create(img, "qcow2", "2M", "cluster_size=4k");
        Qemu.io(img, "qcow2", "write -P 1 0 1M", "write -P 2 1536k 256k");
        Qemu.img("snapshot", "-c", "s", img).ok();
        runSession(Files.readAllBytes(img), 11, 45, 4096);
    }

    @Test
    void newRefcountBlocksAndAMovedTableSurviveCrashes() throws Exception {
        Path img = dir.resolve("g.qcow2");
        Qemu.create(img, "qcow2", "3M", "cluster_size=512", "refcount_bits=64");
        runSession(Files.readAllBytes(img), 12, 45, 512);
    }

    /**
     * Caches of four L2 tables and four refcount blocks: writes that span
     * many tables evict dirty ones mid-write, which must first flush what
     * they depend on (data, refcount blocks, a moved refcount table and the
     * header), as a full flush does. Every L2 table exists before (one
     * cluster in each 32 KiB), so an evicted table is one the L1 points to.
     */
    @Test
    void dirtyTablesEvictedMidWriteSurviveCrashes() throws Exception {
        Path img = dir.resolve("e.qcow2");
        Qemu.create(img, "qcow2", "3M", "cluster_size=512", "refcount_bits=64");
        List<String> seed = new ArrayList<>();
        for (int table = 0; table < 96; table++) {
            seed.add("write -P 1 " + (table * 32768 + 4096) + " 512");
        }
        Qemu.io(img, "qcow2", seed.toArray(String[]::new));
        byte[] initial = Files.readAllBytes(img);
        RecordingStorage rec = new RecordingStorage(MemoryStorage.of("image", initial));
        DiskImage tiny = Qcow2Image.open(new Qcow2Format(), rec, new OpenContext(null, false, null, false), 4 * 512,
                4 * 512);
        runSession(tiny, rec, initial, 14, 20, 512, 256 * 1024);
    }

    @Test
    void compressedClustersRewrittenSurviveCrashes() throws Exception {
        Path src = dir.resolve("src.qcow2");
        Qemu.create(src, "qcow2", "1M");
        Qemu.io(src, "qcow2", "write -P 3 0 1M");
        Path img = dir.resolve("c.qcow2");
        Qemu.img("convert", "-c", "-O", "qcow2", "-o", "cluster_size=4k", src, img).ok();
        runSession(Files.readAllBytes(img), 13, 30, 4096);
    }
}
