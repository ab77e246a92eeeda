package io.diskmorph.format.qcow2;

import io.diskmorph.image.DiskImage;
import io.diskmorph.image.Images;
import io.diskmorph.image.OpenOptions;
import io.diskmorph.testing.Dm;
import io.diskmorph.testing.GuestWrites;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Guest writes by diskmorph (seeded random writes, partial clusters, zero
 * writes), mirrored into a raw reference: qemu-img check must be clean and
 * qemu-img compare must find the image identical to the reference.
 */
class Qcow2WriteTest {
    private static final long SIZE = 6 * 1024 * 1024 + 3 * 512;

    @TempDir
    Path dir;

    /** Random writes and zero writes into {@code image}, applied to {@code ref} too. */
    static void scribble(Path image, byte[] ref, long seed, int ops) throws Exception {
        try (DiskImage img = Images.open(image, OpenOptions.forWriting())) {
            GuestWrites.scribble(img, ref, new Random(seed), ops);
        }
    }

    private void assertMatchesReference(Path image, byte[] ref) throws Exception {
        Oracle.assertCheckClean(image);
        Path raw = dir.resolve("reference.raw");
        Files.write(raw, ref);
        Oracle.assertCompareIdentical(image, raw);
        try (DiskImage img = Images.open(image, OpenOptions.forReading())) {
            byte[] back = new byte[ref.length];
            img.read(ByteBuffer.wrap(back), 0);
            assertEquals(-1, Arrays.mismatch(ref, back), "diskmorph reads back what it wrote");
        }
        Files.delete(raw);
    }

    @ParameterizedTest(name = "-o {0}")
    @ValueSource(strings = {
            "compat=1.1",
            "compat=0.10",
            "cluster_size=512,refcount_bits=1",
            "cluster_size=512,refcount_bits=64",
            "cluster_size=4k,refcount_bits=2",
            "cluster_size=16k,extended_l2=on,refcount_bits=32",
            "extended_l2=on",
            "compression_type=zstd,lazy_refcounts=on,refcount_bits=4",
            "preallocation=metadata,cluster_size=4k",
            "cluster_size=2M,refcount_bits=8"})
    void createdThenWrittenByDiskmorph(String options) throws Exception {
        Path img = dir.resolve("w.qcow2");
        Dm.run("create", "-q", "-f", "qcow2", "-o", options, img, SIZE).ok();
        Oracle.assertCheckClean(img);
        byte[] ref = new byte[(int) SIZE];
        scribble(img, ref, options.hashCode(), 120);
        assertMatchesReference(img, ref);
        Oracle.assertMapEquals(img);
        Oracle.assertInfoEquals(img);
    }

    @ParameterizedTest(name = "compat={0}")
    @ValueSource(strings = {"1.1", "0.10"})
    void writesOverABackingFileCopyPartialClustersFromIt(String compat) throws Exception {
        Path base = dir.resolve("base.qcow2");
        Qemu.create(base, "qcow2", "5M", "cluster_size=4k");
        Qemu.io(base, "qcow2", "write -P 0x5a 0 5M", "write -z 1M 64k");
        Path top = dir.resolve("top.qcow2");
        Dm.run("create", "-q", "-f", "qcow2", "-o", "compat=" + compat + ",cluster_size=64k", "-b", base, "-F",
                "qcow2", top, SIZE).ok();
        byte[] ref = new byte[(int) SIZE];
        Path baseRaw = dir.resolve("base.raw");
        Qemu.toRaw(base, "qcow2", baseRaw);
        byte[] b = Files.readAllBytes(baseRaw);
        System.arraycopy(b, 0, ref, 0, b.length);
        scribble(top, ref, 42, 120);
        assertMatchesReference(top, ref);
        Oracle.assertMapEquals(top);
    }

    @Test
    void extendedL2OverBackingWritesSubclusters() throws Exception {
        Path base = dir.resolve("base.raw");
        Qemu.create(base, "raw", String.valueOf(SIZE));
        Qemu.io(base, "raw", "write -P 0x3c 0 " + SIZE);
        Path top = dir.resolve("top.qcow2");
        Qemu.create(top, "qcow2", String.valueOf(SIZE), "extended_l2=on", "cluster_size=32k",
                "backing_file=base.raw", "backing_fmt=raw");
        Qemu.io(top, "qcow2", "write -P 1 4k 4k", "write -z 100k 3k");
        byte[] ref = new byte[(int) SIZE];
        Arrays.fill(ref, (byte) 0x3c);
        Arrays.fill(ref, 4096, 8192, (byte) 1);
        Arrays.fill(ref, 100 * 1024, 103 * 1024, (byte) 0);
        scribble(top, ref, 7, 150);
        assertMatchesReference(top, ref);
        Oracle.assertMapEquals(top);
    }

    @Test
    void writesIntoSharedClustersCopyOnWriteAndKeepTheSnapshot() throws Exception {
        Path img = dir.resolve("snap.qcow2");
        Qemu.create(img, "qcow2", String.valueOf(SIZE), "cluster_size=16k");
        Qemu.io(img, "qcow2", "write -P 0x61 0 3M", "write -z 3M 64k", "write -P 0x62 4M 1M");
        Path before = dir.resolve("before.raw");
        Qemu.toRaw(img, "qcow2", before);
        Qemu.img("snapshot", "-c", "first", img).ok();
        byte[] ref = Files.readAllBytes(before);
        scribble(img, ref, 99, 150);
        assertMatchesReference(img, ref);
        Path snap = dir.resolve("snap.raw");
        Qemu.img("convert", "-l", "snapshot.name=first", "-O", "raw", img, snap).ok();
        assertEquals(0, Qemu.compare(before, snap), "the snapshot still reads as before");
        Oracle.assertInfoEquals(img);
        Oracle.assertMapEquals(img);
    }

    @Test
    void writesOverCompressedClusters() throws Exception {
        Path src = dir.resolve("src.qcow2");
        Qemu.create(src, "qcow2", String.valueOf(SIZE));
        Qemu.io(src, "qcow2", "write -P 0x71 0 2M", "write -P 0x72 3M 2M");
        List<Path> images = new ArrayList<>();
        for (String type : List.of("zlib", "zstd")) {
            Path img = dir.resolve("c-" + type + ".qcow2");
            Qemu.img("convert", "-c", "-O", "qcow2", "-o", "compression_type=" + type + ",cluster_size=8k", src,
                    img).ok();
            images.add(img);
        }
        Path raw = dir.resolve("src.raw");
        Qemu.toRaw(src, "qcow2", raw);
        for (Path img : images) {
            byte[] ref = Files.readAllBytes(raw);
            scribble(img, ref, 5, 100);
            assertMatchesReference(img, ref);
            Oracle.assertMapEquals(img);
        }
    }

    @Test
    void refcountTableMovesWhenTheFileOutgrowsIt() throws Exception {
        Path img = dir.resolve("grow.qcow2");
        int size = 12 << 20;
        Dm.run("create", "-q", "-f", "qcow2", "-o", "cluster_size=512,refcount_bits=64", img, size).ok();
        Qcow2Header before = header(img);
        byte[] ref = new byte[size];
        new Random(3).nextBytes(ref);
        try (DiskImage d = Images.open(img, OpenOptions.forWriting())) {
            for (int off = 0; off < size; off += 1 << 20) {
                d.write(ByteBuffer.wrap(ref, off, 1 << 20), off);
                if (off % (3 << 20) == 0) {
                    d.flush();
                }
            }
        }
        Qcow2Header after = header(img);
        assertTrue(after.refcountTableClusters > before.refcountTableClusters, "table grew");
        assertTrue(after.refcountTableOffset != before.refcountTableOffset, "table moved");
        assertMatchesReference(img, ref);
    }

    private static Qcow2Header header(Path img) throws Exception {
        try (var s = io.diskmorph.storage.FileStorage.open(img, true, io.diskmorph.storage.LockMode.NONE)) {
            return Qcow2Header.read(s);
        }
    }

    @Test
    void zeroWritesUnmapWithoutBackingAndFreeSpace() throws Exception {
        Path img = dir.resolve("z.qcow2");
        Dm.run("create", "-q", "-f", "qcow2", img, "4M").ok();
        try (DiskImage d = Images.open(img, OpenOptions.forWriting())) {
            d.write(ByteBuffer.wrap(new byte[4 << 20]).put(0, (byte) 1), 0);
            d.flush();
            d.writeZeroes(0, 2 << 20, true);
            d.writeZeroes(2 << 20, 1 << 20, false);
        }
        Oracle.assertCheckClean(img);
        Oracle.assertMapEquals(img);
        List<Qemu.MapLine> map = Qemu.map(img, "qcow2");
        assertTrue(map.get(0).zero() && !map.get(0).data() && map.get(0).offset() < 0, "unmapped: " + map);
        assertTrue(map.stream().anyMatch(l -> l.zero() && l.offset() >= 0), "zero clusters keeping their host "
                + "clusters without mayUnmap: " + map);
    }

    @Test
    void writerRefusesBitmapImagesWithoutTouchingThem() throws Exception {
        Path img = dir.resolve("bm.qcow2");
        Qemu.create(img, "qcow2", "1M");
        Qemu.img("bitmap", "--add", img, "b0").ok();
        byte[] before = Files.readAllBytes(img);
        try (DiskImage d = Images.open(img, OpenOptions.forWriting())) {
            var e = org.junit.jupiter.api.Assertions.assertThrows(
                    io.diskmorph.image.UnsupportedFeatureException.class,
                    () -> d.write(ByteBuffer.allocate(512), 0));
            assertTrue(e.getMessage().contains("bitmaps"));
        }
        assertEquals(-1, Arrays.mismatch(before, Files.readAllBytes(img)));
    }
}
