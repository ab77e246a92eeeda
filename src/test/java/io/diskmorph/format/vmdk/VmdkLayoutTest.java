package io.diskmorph.format.vmdk;

import com.fasterxml.jackson.databind.JsonNode;
import io.diskmorph.testing.Dm;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.io.ByteArrayOutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Layouts qemu-img does not write, built by hand as VMware products write
 * them: an ESXi datastore pair, VirtualBox/Workstation sparse files with
 * other grain sizes and write orders, ESX (COWD) and seSparse snapshots,
 * descriptors that mix extent kinds. qemu-img 7.2 reads all of them and is
 * the oracle; RDONLY and ZERO extents, which qemu drops, are checked against
 * the bytes the descriptor describes.
 */
class VmdkLayoutTest {
    @TempDir
    Path dir;

    /** ESXi: NAME.vmdk (createType vmfs, a VMFS extent) and NAME-flat.vmdk, a raw file with holes. */
    @Test
    void esxiDescriptorAndFlatFile() throws Exception {
        long size = 40L << 20;
        Path raw = VmdkFiles.sampleRaw(dir, "guest.raw", String.valueOf(size), VmdkFiles.sampleWrites(size));
        Path img = VmdkFiles.esxiPair(dir, "esxi", raw, 0x5f3a9c21L);
        VmdkFiles.assertReadsLikeQemu(img, dir);
        assertEquals(0, Dm.run("compare", img, raw).exitCode());
        JsonNode info = Dm.run("info", "--output=json", img).ok().json();
        assertEquals("vmfs", info.get("format-specific").get("data").get("create-type").asText());
        assertEquals(dir.resolve("esxi-flat.vmdk").toString(),
                info.get("format-specific").get("data").get("extents").get(0).get("filename").asText());
    }

    /** vmfsThin and the other VMFS flat types: qemu 7.2 refuses them by name; they read as vmfs. */
    @ParameterizedTest
    @CsvSource({"vmfsThin", "vmfsPreallocated", "vmfsEagerZeroedThick"})
    void otherVmfsFlatTypesReadAsVmfs(String createType) throws Exception {
        Path raw = VmdkFiles.sampleRaw(dir, "g.raw", "4M", "write -P 9 64k 1M");
        Path img = VmdkFiles.esxiPair(dir, "thin", raw, 0x1234L);
        Files.writeString(img, Files.readString(img).replace("createType=\"vmfs\"", "createType=\"" + createType
                + "\""));
        assertTrue(Qemu.img("info", img).exitCode() != 0, "qemu-img 7.2 now reads " + createType);
        assertEquals(0, Dm.run("compare", img, raw).exitCode());
        assertEquals(createType, Dm.run("info", "--output=json", img).ok().json().get("format-specific")
                .get("data").get("create-type").asText());
    }

    /**
     * Hosted sparse files as VirtualBox and Workstation write them: the
     * overhead rounded to 64 KiB, grains placed in the order the guest wrote
     * them (here backwards), grain sizes and table sizes qemu accepts other
     * than its own 64 KiB / 512, versions 1 to 3, with and without the
     * redundant directory and zeroed grains.
     */
    @ParameterizedTest(name = "grain {0} sectors, {1} entries per table, version {2}, rgd {3}, zeroed {4}")
    @CsvSource({"128, 512, 1, true, false", "128, 512, 2, true, true", "128, 512, 3, false, false",
            "8, 512, 1, true, false", "16, 128, 1, true, true", "2048, 512, 1, false, false",
            "3, 7, 1, true, false", "1, 1, 2, true, true"})
    void handMadeSparseFiles(long grainSectors, int gtEntries, int version, boolean rgd, boolean zeroed)
            throws Exception {
        long capacity = (long) gtEntries * grainSectors * 5 + 3; // five tables and a partial grain
        VmdkFiles.SparseBuilder b = new VmdkFiles.SparseBuilder(capacity);
        b.grainSectors = grainSectors;
        b.gtEntries = gtEntries;
        b.version = version;
        b.redundant = rgd;
        b.zeroedGrains = zeroed;
        b.alignSectors = 128;
        b.descriptor = VmdkFiles.descriptor(0xa1b2c3d4L, 0xffffffffL, "monolithicSparse", null,
                "RW " + capacity + " SPARSE \"vbox.vmdk\"");
        long grains = Math.ceilDiv(capacity, grainSectors);
        int bytes = (int) (grainSectors * VmdkFiles.SECTOR);
        long[] order = {grains - 1, 2 * gtEntries + 1, 0, 1, 3 * gtEntries, gtEntries - 1, gtEntries};
        for (int i = 0; i < order.length; i++) {
            if (order[i] < grains) {
                b.grains.put(order[i], VmdkFiles.pattern(bytes, i + 1));
            }
        }
        if (zeroed) {
            b.grains.put(4L, null);
            b.grains.put(grains - 2, null);
        }
        Path img = dir.resolve("vbox.vmdk");
        Files.write(img, b.build());
        VmdkFiles.assertReadsLikeQemu(img, dir);
    }

    /**
     * An ESX snapshot: a vmfsSparse descriptor with a COWD delta extent over
     * an ESXi flat base, found through parentFileNameHint; grains of one
     * sector (ESX redo logs) and of 64 KiB.
     */
    @ParameterizedTest
    @CsvSource({"1", "128"})
    void esxSnapshotOverAFlatBase(long grainSectors) throws Exception {
        long size = 8L << 20;
        Path raw = VmdkFiles.sampleRaw(dir, "base.raw", String.valueOf(size), "write -P 0x61 0 2M",
                "write -P 0x62 5M 1M");
        VmdkFiles.esxiPair(dir, "base", raw, 0x0badcafeL);
        long sectors = size / VmdkFiles.SECTOR;
        Map<Long, byte[]> grains = new LinkedHashMap<>();
        int bytes = (int) (grainSectors * VmdkFiles.SECTOR);
        grains.put(3000 / grainSectors * 7 % (sectors / grainSectors), VmdkFiles.pattern(bytes, 1));
        grains.put(0L, VmdkFiles.pattern(bytes, 2));
        grains.put(sectors / grainSectors - 1, VmdkFiles.pattern(bytes, 3));
        grains.put(4096L * 128 / grainSectors / 128, VmdkFiles.pattern(bytes, 4)); // in a later table (1-sector grains)
        Files.write(dir.resolve("snap-delta.vmdk"), VmdkFiles.cowd(sectors, grainSectors, grains));
        Path snap = dir.resolve("snap.vmdk");
        Files.writeString(snap, VmdkFiles.descriptor(0x77777777L, 0x0badcafeL, "vmfsSparse", "base.vmdk",
                "RW " + sectors + " VMFSSPARSE \"snap-delta.vmdk\""));
        VmdkFiles.assertSameInfo(snap);
        VmdkFiles.assertSameMap(snap);
        VmdkFiles.assertSameGuestBytes(snap, dir);
        assertEquals(Qemu.img("check", snap).exitCode(), Dm.run("check", snap).exitCode());
    }

    /** An ESXi seSparse snapshot (4 KiB grains, u64 entries, zero grains) over a flat base: read as qemu reads it. */
    @Test
    void seSparseSnapshot() throws Exception {
        long size = 300L << 20; // more than one grain table (128 MiB each)
        Path raw = VmdkFiles.sampleRaw(dir, "base.raw", String.valueOf(size), "write -P 0x61 0 1M",
                "write -P 0x62 " + (200L << 20) + " 1M");
        VmdkFiles.esxiPair(dir, "base", raw, 0x12345678L);
        Map<Long, byte[]> grains = new LinkedHashMap<>();
        grains.put(1L, VmdkFiles.pattern(4096, 1));
        grains.put(2L, null); // a zero grain hides the base's data
        grains.put(3L, VmdkFiles.pattern(4096, 2));
        grains.put((200L << 20) / 4096 + 5, VmdkFiles.pattern(4096, 3));
        grains.put((200L << 20) / 4096 + 6, VmdkFiles.pattern(4096, 4));
        grains.put(5000L, VmdkFiles.pattern(4096, 5)); // placed after the grain above: not contiguous in the file
        Files.write(dir.resolve("snap-sesparse.vmdk"), VmdkFiles.seSparse(size / VmdkFiles.SECTOR, grains));
        Path snap = dir.resolve("snap.vmdk");
        Files.writeString(snap, VmdkFiles.descriptor(0x9abcdef0L, 0x12345678L, "seSparse", "base.vmdk",
                "RW " + size / VmdkFiles.SECTOR + " SESPARSE \"snap-sesparse.vmdk\""));
        VmdkFiles.assertSameInfo(snap);
        VmdkFiles.assertSameMap(snap);
        VmdkFiles.assertSameGuestBytes(snap, dir);
    }

    /**
     * A streamOptimized file as VMware exports it (OVF): tables and directory
     * after the grains, the real directory offset only in the footer; grains
     * in guest order, one of them the last, partial grain.
     */
    @Test
    void vmwareStreamWithFooter() throws Exception {
        long capacity = (70L << 20) / VmdkFiles.SECTOR + 16; // three tables, a partial last grain
        Map<Long, byte[]> grains = new LinkedHashMap<>();
        grains.put(0L, VmdkFiles.pattern(65536, 1));
        grains.put(1L, new byte[65536]); // VMware deflates zero grains it was given, too
        grains.put(600L, VmdkFiles.pattern(65536, 2));
        grains.put(1120L, VmdkFiles.pattern(8192, 3)); // the last grain: 16 sectors of the disk
        Path img = dir.resolve("export.vmdk");
        Files.write(img, VmdkFiles.vmwareStream(capacity, VmdkFiles.descriptor(0x4e1f0a33L, 0xffffffffL,
                "streamOptimized", null, "RW " + capacity + " SPARSE \"export.vmdk\""), grains));
        VmdkFiles.assertReadsLikeQemu(img, dir);
    }

    /** Extent kinds mixed in one descriptor: flat pieces of one file, a qemu-made sparse file. */
    @Test
    void mixedExtentsReadLikeQemu() throws Exception {
        byte[] a = VmdkFiles.pattern(2 << 20, 5);
        Files.write(dir.resolve("a.bin"), a);
        Path sparse = dir.resolve("s.vmdk");
        Qemu.create(sparse, "vmdk", "3M");
        Qemu.io(sparse, "vmdk", "write -P 0x66 64k 100k", "write -P 0x67 3000k 72k");
        Path img = dir.resolve("mixed.vmdk");
        Files.writeString(img, VmdkFiles.descriptor(0x10L, 0xffffffffL, "monolithicFlat", null,
                "RW 1024 FLAT \"a.bin\" 2048",
                "RW 6144 SPARSE \"s.vmdk\"",
                "RW 2048 FLAT \"a.bin\" 0"));
        VmdkFiles.assertReadsLikeQemu(img, dir);
        JsonNode info = Dm.run("info", "--output=json", img).ok().json();
        assertTrue(!info.has("cluster-size"), "qemu shows no cluster size for a mix of extent kinds");
    }

    /**
     * RDONLY extents read like RW ones and ZERO extents read zeros, as the
     * VMDK technote describes them; qemu 7.2 drops both lines (its disk is
     * shorter and every later extent moves), so the expected bytes come from
     * the descriptor itself.
     */
    @Test
    void readOnlyAndZeroExtentsFollowTheDescriptor() throws Exception {
        byte[] a = VmdkFiles.pattern(1 << 20, 1);
        byte[] b = VmdkFiles.pattern(1 << 20, 2);
        byte[] c = VmdkFiles.pattern(1 << 20, 3);
        Files.write(dir.resolve("a.bin"), a);
        Files.write(dir.resolve("b.bin"), b);
        Files.write(dir.resolve("c.bin"), c);
        Path img = dir.resolve("ro.vmdk");
        Files.writeString(img, VmdkFiles.descriptor(0x20L, 0xffffffffL, "monolithicFlat", null,
                "RW 2048 FLAT \"a.bin\" 0",
                "RDONLY 2048 FLAT \"b.bin\" 0",
                "RW 1024 ZERO",
                "RW 1024 FLAT \"c.bin\" 1024"));
        ByteArrayOutputStream want = new ByteArrayOutputStream();
        want.write(a);
        want.write(b);
        want.write(new byte[512 << 10]);
        want.write(Arrays.copyOfRange(c, 512 << 10, 1 << 20));
        Path out = dir.resolve("ro.raw");
        Dm.run("convert", "-O", "raw", img, out).ok();
        assertArrayEquals(want.toByteArray(), Files.readAllBytes(out));
        List<Qemu.MapLine> map = Dm.map(img, null);
        assertEquals(new Qemu.MapLine(2L << 20, 512 << 10, 0, true, true, false, -1), map.get(2));
        JsonNode extents = Dm.run("info", "--output=json", img).ok().json().get("format-specific").get("data")
                .get("extents");
        assertEquals("ZERO", extents.get(2).get("format").asText());
        // qemu 7.2 drops the RDONLY and ZERO lines: a shorter disk (pinned, so a qemu that changes shows here)
        assertEquals(3L << 19, Qemu.img("info", "--output=json", img).ok().json().get("virtual-size").asLong());
    }
}
