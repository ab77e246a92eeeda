package io.diskmorph.format.vmdk;

import io.diskmorph.image.DiskImage;
import io.diskmorph.image.ImageException;
import io.diskmorph.image.Images;
import io.diskmorph.image.OpenContext;
import io.diskmorph.image.OpenOptions;
import io.diskmorph.storage.MemoryStorage;
import io.diskmorph.testing.Dm;
import io.diskmorph.testing.GuestWrites;
import io.diskmorph.testing.Oracles;
import io.diskmorph.testing.Qemu;
import io.diskmorph.testing.RecordingStorage;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Guest writes into VMDK images qemu-img made, in every writable subformat:
 * seeded random writes and zero writes mirrored into a byte array, then
 * qemu-img check is clean, qemu-img compare finds the mirror, the map
 * equals qemu-img's, vmdkinfo still reads the image. Also: grain tables
 * made where the directory has none, the write order (a grain is durable
 * before a table names it), the new CID of a written disk, and the images
 * whose writes are refused with every file unchanged.
 */
class VmdkWriteTest {
    @TempDir
    Path dir;

    /** qemu-img create, some data by qemu-io, then diskmorph's writes. */
    @ParameterizedTest
    @CsvSource(delimiter = '|', value = {
            "subformat=monolithicSparse|6M",
            "zeroed_grain=on|6M",
            "subformat=monolithicFlat|5M",
            "subformat=twoGbMaxExtentSparse|6M",
            "subformat=twoGbMaxExtentSparse,zeroed_grain=on|6M",
            "subformat=twoGbMaxExtentFlat|5M",
            "subformat=monolithicSparse|40M"})
    void writesLandInImagesQemuMade(String options, String size) throws Exception {
        Path img = dir.resolve("w.vmdk");
        Qemu.create(img, "vmdk", size, options);
        Qemu.io(img, "vmdk", "write -P 0x11 64k 100k", "write -z 300k 70k", "write -P 0x22 1M 4k");
        assertWritesLand(img, 7);
    }

    /** One descriptor over a sparse extent, a flat extent and another sparse one: writes across their borders. */
    @Test
    void writesCrossExtents() throws Exception {
        Qemu.create(dir.resolve("a.vmdk"), "vmdk", "3M", "subformat=twoGbMaxExtentSparse");
        Qemu.create(dir.resolve("c.vmdk"), "vmdk", "2M", "subformat=twoGbMaxExtentSparse,zeroed_grain=on");
        Files.write(dir.resolve("b-flat.vmdk"), new byte[1 << 20]);
        Path img = dir.resolve("mixed.vmdk");
        Files.writeString(img, VmdkFiles.descriptor(0x1234abcdL, Descriptor.NO_PARENT_CID, "twoGbMaxExtentSparse",
                null, "RW 6144 SPARSE \"a-s001.vmdk\"", "RW 2048 FLAT \"b-flat.vmdk\" 0",
                "RW 4096 SPARSE \"c-s001.vmdk\""));
        assertWritesLand(img, 11);
        assertEquals(1 << 20, Files.size(dir.resolve("b-flat.vmdk")), "the flat extent kept its size");
    }

    /**
     * A directory entry of 0 (other writers leave them so; qemu fills them
     * all): the write makes a zeroed grain table and its redundant copy at
     * the end of the file and points both directories at them.
     */
    @Test
    void makesGrainTablesWhereTheDirectoryHasNone() throws Exception {
        Path img = dir.resolve("gd0.vmdk");
        Qemu.create(img, "vmdk", "40M");
        long gd = VmdkFiles.u64(img, 56) * 512;
        long rgd = VmdkFiles.u64(img, 48) * 512;
        VmdkFiles.putU32(img, gd + 4, 0);
        VmdkFiles.putU32(img, rgd + 4, 0);
        long before = Files.size(img);
        byte[] mirror = new byte[40 << 20];
        try (DiskImage d = Images.open(img, OpenOptions.forWriting().withFormat("vmdk"))) {
            byte[] data = VmdkFiles.pattern(100_000, 3);
            d.write(ByteBuffer.wrap(data), 36L << 20);
            System.arraycopy(data, 0, mirror, 36 << 20, data.length);
        }
        assertTrue(VmdkFiles.u32(img, gd + 4) * 512 >= before, "a new table past the old end");
        assertNotEquals(VmdkFiles.u32(img, gd + 4), VmdkFiles.u32(img, rgd + 4), "and a redundant one");
        assertMirror(img, mirror);
    }

    /**
     * Write order: every write into a grain table (or its redundant copy)
     * comes after a sync that follows every grain written before it, so a
     * crash never leaves a table naming a grain that is not on disk; the new
     * CID is synced before the first grain. With the usual cache, and with a
     * cache of four grain tables, so that dirty tables are evicted and the
     * cache flushes when half of it is dirty.
     */
    @ParameterizedTest
    @CsvSource({"4194304", "8192"})
    void grainsAreDurableBeforeTheTablesNameThem(long cacheBytes) throws Exception {
        Path img = dir.resolve("order.vmdk");
        Qemu.create(img, "vmdk", "120M");
        long overhead = VmdkFiles.u64(img, 64) * 512; // tables and directories lie before the grains
        RecordingStorage file = new RecordingStorage(MemoryStorage.of("order.vmdk", Files.readAllBytes(img)));
        byte[] mirror = new byte[120 << 20];
        VmdkImage.tableCacheBytes = cacheBytes;
        try (DiskImage d = new VmdkFormat().open(file, new OpenContext(null, false, null, false))) {
            GuestWrites.scribble(d, mirror, new Random(5), 120);
        } finally {
            VmdkImage.tableCacheBytes = VmdkImage.TABLE_CACHE_BYTES;
        }
        List<String> ops = file.ops();
        assertTrue(ops.size() > 2 && ops.get(0).startsWith("w ") && ops.get(1).equals("sync"), ops.toString());
        long cidAt = Long.parseLong(ops.get(0).substring(2));
        assertTrue(cidAt >= 512 && cidAt < 21 * 512, "first the CID in the embedded descriptor, synced: " + ops);
        boolean syncedSinceData = true;
        int tableWrites = 0;
        for (String op : ops) {
            if (op.equals("sync")) {
                syncedSinceData = true;
                continue;
            }
            long at = Long.parseLong(op.substring(2));
            if (at >= overhead) {
                syncedSinceData = false;
            } else if (at >= 21 * 512) {
                tableWrites++;
                assertTrue(syncedSinceData, "a grain table write at " + at + " waits for the grains: " + ops);
            }
        }
        assertTrue(tableWrites > 0, "tables were written: " + ops);
        Files.write(img, file.bytes());
        assertMirror(img, mirror);
    }

    /** The first write gives the disk a new CID, so a snapshot taken before stops reading through it, as in qemu. */
    @Test
    void aWrittenParentInvalidatesItsSnapshots() throws Exception {
        Path base = dir.resolve("base.vmdk");
        Qemu.create(base, "vmdk", "4M");
        Qemu.io(base, "vmdk", "write -P 0x33 0 64k");
        Path top = dir.resolve("top.vmdk");
        Qemu.img("create", "-q", "-f", "vmdk", "-b", "base.vmdk", "-F", "vmdk", top).ok();
        long cid = Dm.run("info", "--output=json", base).ok().json().get("format-specific").get("data")
                .get("cid").asLong();
        Dm.run("convert", "-O", "raw", top, dir.resolve("before.raw")).ok();
        long reported;
        try (DiskImage d = Images.open(base, OpenOptions.forWriting().withFormat("vmdk"))) {
            d.write(ByteBuffer.wrap(new byte[]{1}), 1 << 20);
            reported = ((Number) d.info().formatSpecific().get("cid")).longValue();
        }
        long now = Dm.run("info", "--output=json", base).ok().json().get("format-specific").get("data")
                .get("cid").asLong();
        assertNotEquals(cid, now, "a new CID");
        assertEquals(now, reported, "the open image reports the CID it wrote");
        Oracles.assertCheckClean(base, "vmdk");
        assertNotEquals(0, Qemu.img("convert", "-O", "raw", top, dir.resolve("q.raw")).exitCode(),
                "qemu refuses the snapshot of a changed parent");
        assertEquals(65, Dm.run("convert", "-O", "raw", top, dir.resolve("d.raw")).exitCode(), "and so does diskmorph");
    }

    /** Images whose writes are refused: one ImageException, every file byte-identical. */
    @Test
    void refusedWritesLeaveEveryFileAlone() throws Exception {
        List<Path> images = new ArrayList<>();
        Path stream = dir.resolve("stream.vmdk");
        Qemu.create(stream, "vmdk", "4M", "subformat=streamOptimized");
        images.add(stream);
        Path v3 = dir.resolve("v3.vmdk");
        Qemu.create(v3, "vmdk", "4M");
        VmdkFiles.putU32(v3, 4, 3);
        images.add(v3);
        Files.write(dir.resolve("ro-flat.vmdk"), new byte[1 << 20]);
        Path ro = dir.resolve("ro.vmdk");
        Files.writeString(ro, VmdkFiles.descriptor(7, Descriptor.NO_PARENT_CID, "monolithicFlat", null,
                "RDONLY 2048 FLAT \"ro-flat.vmdk\" 0"));
        images.add(ro);
        Path zero = dir.resolve("zero.vmdk");
        Files.write(dir.resolve("z-flat.vmdk"), new byte[1 << 20]);
        Files.writeString(zero, VmdkFiles.descriptor(8, Descriptor.NO_PARENT_CID, "monolithicFlat", null,
                "RW 2048 FLAT \"z-flat.vmdk\" 0", "RW 2048 ZERO"));
        images.add(zero);
        for (Path img : images) {
            Map<Path, byte[]> before = snapshot();
            long at = img == zero ? (1 << 20) - 512 : 0; // starts in the flat extent, ends in the ZERO one
            ImageException e = assertThrows(ImageException.class, () -> {
                try (DiskImage d = Images.open(img, OpenOptions.forWriting().withFormat("vmdk"))) {
                    d.write(ByteBuffer.wrap(new byte[1024]), at);
                }
            }, img.toString());
            assertEquals(1, e.getMessage().lines().count(), e.getMessage());
            Map<Path, byte[]> after = snapshot();
            assertEquals(before.keySet(), after.keySet());
            for (Path p : before.keySet()) {
                assertArrayEquals(before.get(p), after.get(p), p + " unchanged after " + e.getMessage());
            }
        }
    }

    /**
     * Grains of 2 MiB (qemu reads grains up to 1 GiB): a partial write fills
     * the rest of a new grain piece by piece, never holding a whole grain.
     */
    @Test
    void largeGrainsAreFilledInPieces() throws Exception {
        Path img = dir.resolve("big-grains.vmdk");
        Qemu.create(img, "vmdk", "8M");
        VmdkFiles.putU64(img, 20, 4096); // 2 MiB grains; the one grain table still covers the disk
        assertWritesLand(img, 13);
    }

    /**
     * Damaged tables are not written through (a table over the header, a
     * redundant table past the end, a grain inside the descriptor): the write
     * is refused as corrupt (exit 65) before anything, the CID included, is
     * written.
     */
    @ParameterizedTest
    @CsvSource({"gd0-at-header", "rgd0-past-end", "grain-in-descriptor"})
    void damagedTablesAreNotWrittenThrough(String damage) throws Exception {
        Path img = dir.resolve("damaged.vmdk");
        Qemu.create(img, "vmdk", "4M");
        Qemu.io(img, "vmdk", "write -P 9 0 64k");
        long gd = VmdkFiles.u64(img, 56) * 512;
        long rgd = VmdkFiles.u64(img, 48) * 512;
        switch (damage) {
            case "gd0-at-header" -> VmdkFiles.putU32(img, gd, 0);
            case "rgd0-past-end" -> VmdkFiles.putU32(img, rgd, Files.size(img) / 512 + 100);
            default -> {
                long table = VmdkFiles.u32(img, gd) * 512;
                VmdkFiles.putU32(img, table, 2); // grain 0 at sector 2: inside the embedded descriptor
                VmdkFiles.putU32(img, VmdkFiles.u32(img, rgd) * 512, 2);
            }
        }
        if (damage.equals("gd0-at-header")) {
            VmdkFiles.putU32(img, gd, 1); // sector 1: over the descriptor (0 would mean "no table")
        }
        byte[] before = Files.readAllBytes(img);
        ImageException e = assertThrows(ImageException.class, () -> {
            try (DiskImage d = Images.open(img, OpenOptions.forWriting().withFormat("vmdk"))) {
                d.write(ByteBuffer.wrap(new byte[4096]), 4096);
            }
        });
        assertEquals(65, e.exitCode(), e.getMessage());
        assertEquals(1, e.getMessage().lines().count(), e.getMessage());
        assertArrayEquals(before, Files.readAllBytes(img), "nothing written: " + e.getMessage());
    }

    // ---- helpers --------------------------------------------------------------------------

    private void assertWritesLand(Path img, long seed) throws Exception {
        Path raw = dir.resolve("start.raw");
        Files.deleteIfExists(raw);
        Qemu.toRaw(img, "vmdk", raw);
        byte[] mirror = Files.readAllBytes(raw);
        try (DiskImage d = Images.open(img, OpenOptions.forWriting().withFormat("vmdk"))) {
            GuestWrites.scribble(d, mirror, new Random(seed), 80);
            long size = d.virtualSize();
            assertThrows(ImageException.class, () -> d.write(ByteBuffer.wrap(new byte[2]), size - 1));
        }
        assertMirror(img, mirror);
    }

    private void assertMirror(Path img, byte[] mirror) throws Exception {
        Oracles.assertCheckClean(img, "vmdk");
        Path ref = dir.resolve("mirror.raw");
        Files.write(ref, mirror);
        Qemu.Result cmp = Qemu.img("compare", "-f", "vmdk", "-F", "raw", img, ref);
        assertEquals(0, cmp.exitCode(), "qemu-img compare with the mirror: " + cmp.out() + cmp.err());
        assertEquals(Qemu.map(img, "vmdk"), Dm.map(img, "vmdk"), "map of what diskmorph wrote");
        assertEquals(0, Dm.run("check", img).exitCode(), "diskmorph check");
        VmdkFiles.assertVmdkinfoAgrees(img);
    }

    private Map<Path, byte[]> snapshot() throws IOException {
        Map<Path, byte[]> m = new LinkedHashMap<>();
        try (Stream<Path> s = Files.list(dir)) {
            for (Path p : s.sorted().toList()) {
                m.put(p, Files.readAllBytes(p));
            }
        }
        return m;
    }

    static String text(Path p) throws IOException {
        return new String(Files.readAllBytes(p), StandardCharsets.ISO_8859_1);
    }
}
