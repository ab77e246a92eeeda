package io.diskmorph.format.vdi;

import io.diskmorph.image.CreateSpec;
import io.diskmorph.image.DiskImage;
import io.diskmorph.image.Images;
import io.diskmorph.image.OpenContext;
import io.diskmorph.image.OpenOptions;
import io.diskmorph.storage.MemoryStorage;
import io.diskmorph.testing.Dm;
import io.diskmorph.testing.Oracles;
import io.diskmorph.testing.Qemu;
import io.diskmorph.testing.RecordingStorage;
import io.diskmorph.testing.RecordingStorage.Event;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Guest writes: blocks appended where qemu appends them, the flush order
 * that keeps a crash harmless (data, sync, header, sync, map, sync), the
 * map cache's evictions, zero writes that allocate nothing.
 */
class VdiWriteTest {
    @TempDir
    Path dir;

    /**
     * Every write of the header has every data write before it synced
     * first, and every write of the map has every data and header write
     * before it synced first: a crash never leaves an entry pointing at
     * unwritten data, nor an entry at a block blocks_allocated does not
     * count. Syncs are batched per flush.
     */
    @Test
    void flushWritesDataThenHeaderThenMap() throws Exception {
        RecordingStorage s = new RecordingStorage(new MemoryStorage("rec"));
        VdiFormat fmt = new VdiFormat();
        long size = 64L << 20;
        try (DiskImage img = fmt.create(s, CreateSpec.of(size), new OpenContext(null, false, null, false))) {
            long mapStart = 512;
            long mapEnd = mapStart + 4 * 64;
            Random rnd = new Random(5);
            for (int round = 0; round < 3; round++) {
                s.events.clear();
                for (int i = 0; i < 20; i++) {
                    byte[] d = new byte[1 + rnd.nextInt(300_000)];
                    rnd.nextBytes(d);
                    img.write(ByteBuffer.wrap(d), rnd.nextLong(size - d.length));
                }
                img.flush();
                int lastSync = -1;
                int lastData = -1;
                int lastHeader = -1;
                int syncs = 0;
                for (int i = 0; i < s.events.size(); i++) {
                    Event e = s.events.get(i);
                    if (e.sync()) {
                        lastSync = i;
                        syncs++;
                    } else if (e.offset() == 0) {
                        assertTrue(lastData < lastSync, "data synced before the header counts it (event " + i + ")");
                        lastHeader = i;
                    } else if (e.offset() >= mapStart && e.offset() < mapEnd) {
                        assertTrue(lastData < lastSync && lastHeader < lastSync,
                                "data and header synced before the map points at them (event " + i + ")");
                    } else {
                        lastData = i;
                    }
                }
                assertTrue(syncs <= 3, "one sync per step: " + syncs);
                assertTrue(s.events.getLast().sync(), "the flush ends synced");
            }
        }
    }

    /**
     * convert -O vdi (the copy engine over VdiImage.write): the same file as qemu-img convert -O vdi writes,
     * byte for byte after the header (whose UUIDs are random), dynamic and static.
     */
    @Test
    void copyConvertWritesWhatQemuImgConvertWrites() throws Exception {
        Path src = dir.resolve("src.qcow2");
        Qemu.create(src, "qcow2", "20M");
        Qemu.io(src, "qcow2", "write -P 1 0 64k", "write -P 2 3M 2M", "write -z 8M 1M", "write -P 3 19M 512k");
        for (String options : new String[]{"static=off", "static=on"}) {
            Path q = dir.resolve("q.vdi");
            Path d = dir.resolve("d.vdi");
            Files.deleteIfExists(q);
            Files.deleteIfExists(d);
            Qemu.img("convert", "-O", "vdi", "-o", options, src, q).ok();
            Dm.run("convert", "-O", "vdi", "-o", options, src, d).ok();
            byte[] a = Files.readAllBytes(q);
            byte[] b = Files.readAllBytes(d);
            assertEquals(a.length, b.length, options + ": file length");
            assertEquals(-1, java.util.Arrays.mismatch(a, 512, a.length, b, 512, b.length), options + ": map and data");
            java.util.Arrays.fill(a, 0x188, 0x1a8, (byte) 0);
            java.util.Arrays.fill(b, 0x188, 0x1a8, (byte) 0);
            assertEquals(-1, java.util.Arrays.mismatch(a, b), options + ": the header but its UUIDs");
            Oracles.assertCheckClean(d, "vdi");
        }
    }

    /** New blocks go at offset_data + blocks_allocated * 1 MiB: 1 MiB aligned in a VirtualBox-layout file. */
    @Test
    void writesToAVirtualBoxLayoutAppendBlocks() throws Exception {
        Path img = dir.resolve("vbox.vdi");
        VdiFiles.virtualBox(img, 8L << 20, Map.of(0L, 1L, 5L, 0L), g -> VdiFiles.pattern(VdiFiles.MIB, g));
        try (DiskImage d = Images.open(img, OpenOptions.forWriting().withFormat("vdi"))) {
            d.write(ByteBuffer.wrap(VdiFiles.pattern(4096, 77)), (3L << 20) + 8192); // a new block: host block 2
            d.write(ByteBuffer.wrap(VdiFiles.pattern(512, 78)), 512); // in place, block 0 at host block 1
            d.writeZeroes(6L << 20, 2L << 20, true); // unallocated already: nothing allocated
        }
        assertEquals(3, VdiFiles.u32(img, 0x184), "blocks_allocated");
        assertEquals(2, VdiFiles.u32(img, (1 << 20) + 4 * 3), "guest block 3 -> host block 2");
        assertEquals((2L << 20) + (3L << 20), Files.size(img), "the file ends after host block 2");
        Oracles.assertCheckClean(img, "vdi");
        Qemu.io(img, "vdi", "read -P 0 " + (3L << 20) + " 8192",
                "read -P 0 " + ((3L << 20) + 12288) + " " + ((1 << 20) - 12288));
        VdiFiles.assertReadsLikeQemu(img, dir);
    }

    /**
     * More map pages than the cache holds (64 pages of 16 GiB of guest
     * each): dirty pages are written on eviction, in order after data and
     * header, and read back when revisited.
     */
    @Test
    void mapCacheEvictionKeepsEverything() throws Exception {
        Path f = dir.resolve("many.vdi");
        Dm.run("create", "-q", "-f", "vdi", f, "2T").ok();
        long region = 16L << 30;
        try (DiskImage img = Images.open(f, OpenOptions.forWriting().withFormat("vdi"))) {
            for (int pass = 0; pass < 2; pass++) {
                for (long r = 0; r < 100; r++) {
                    ByteBuffer b = ByteBuffer.allocate(512);
                    b.put(0, (byte) (r + 1)).put(511, (byte) (pass + 1));
                    img.write(b, r * region + pass * (1 << 20) + 512);
                }
            }
        }
        Qemu.Result check = Qemu.check(f, "vdi");
        assertEquals(0, check.exitCode(), check.out() + check.err());
        assertEquals(200, VdiFiles.u32(f, 0x184), "blocks_allocated");
        Qemu.io(f, "vdi", "read -P 1 512 1", "read -P 1 1023 1", "read -P 2 " + ((1 << 20) + 1023) + " 1",
                "read -P 100 " + (99 * region + 512) + " 1", "read -P 2 " + (99 * region + (1 << 20) + 1023) + " 1");
        assertEquals(Qemu.map(f, "vdi"), Dm.map(f, "vdi"));
    }
}
