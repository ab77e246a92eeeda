package io.diskmorph.format.qcow2;

import io.diskmorph.image.DiskImage;
import io.diskmorph.image.Images;
import io.diskmorph.image.OpenOptions;
import io.diskmorph.image.UnsupportedFeatureException;
import io.diskmorph.testing.Dm;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Images made by qemu-img / qemu-io, read by diskmorph: map, bytes, info and compare agree with qemu. */
class Qcow2ReadTest {
    /** Not a multiple of any cluster size (but of 512, as qemu requires). */
    private static final long SIZE = 5 * 1024 * 1024 + 3 * 512;

    @TempDir
    Path dir;

    static Stream<Arguments> matrix() {
        List<Arguments> out = new ArrayList<>();
        for (String compat : List.of("0.10", "1.1")) {
            for (String cluster : List.of("512", "4k", "64k", "2M")) {
                for (int bits : List.of(1, 16, 64)) {
                    if (compat.equals("0.10") && bits != 16) {
                        continue;
                    }
                    out.add(Arguments.of(compat, cluster, bits));
                }
            }
        }
        return out.stream();
    }

    /** Scattered writes, partial clusters, zero writes, discards. */
    private static void scribble(Path img) {
        Qemu.io(img, "qcow2", "write -P 0x11 0 4k", "write -P 0x22 70000 3000", "write -P 0x33 1M 192k",
                "write -z 1088k 64k", "write -P 0x44 2M 1k", "discard 1M 64k", "write -P 0x55 3M 2M",
                "write -z 4M 512k", "discard 4608k 64k", "write -P 0x66 " + (SIZE - 512) + " 512");
    }

    @ParameterizedTest(name = "compat={0} cluster_size={1} refcount_bits={2}")
    @MethodSource("matrix")
    void qemuWrittenImagesAgree(String compat, String cluster, int bits) throws Exception {
        Path img = dir.resolve("m.qcow2");
        Qemu.create(img, "qcow2", String.valueOf(SIZE), "compat=" + compat, "cluster_size=" + cluster,
                "refcount_bits=" + bits);
        scribble(img);
        Oracle.assertAgreesWithQemu(img, dir);
    }

    @ParameterizedTest(name = "compression_type={0} cluster_size={1}")
    @MethodSource("compressedCases")
    void compressedClusters(String type, String cluster, boolean extendedL2) throws Exception {
        Path src = dir.resolve("src.qcow2");
        Qemu.create(src, "qcow2", String.valueOf(SIZE));
        scribble(src);
        Qemu.io(src, "qcow2", "write -P 0x77 2500k 100k");
        Path img = dir.resolve("c.qcow2");
        List<String> opts = new ArrayList<>(List.of("cluster_size=" + cluster, "compression_type=" + type));
        if (extendedL2) {
            opts.add("extended_l2=on");
        }
        Qemu.img("convert", "-c", "-O", "qcow2", "-o", String.join(",", opts), src, img).ok();
        // some clusters overwritten uncompressed afterwards
        Qemu.io(img, "qcow2", "write -P 0x88 0 8k", "write -z 3M 64k");
        Oracle.assertAgreesWithQemu(img, dir);
    }

    static Stream<Arguments> compressedCases() {
        return Stream.of(Arguments.of("zlib", "64k", false), Arguments.of("zstd", "64k", false),
                Arguments.of("zlib", "4k", false), Arguments.of("zstd", "512", false),
                Arguments.of("zlib", "2M", false), Arguments.of("zstd", "32k", true));
    }

    @Test
    void extendedL2Subclusters() throws Exception {
        Path img = dir.resolve("e.qcow2");
        Qemu.create(img, "qcow2", String.valueOf(SIZE), "extended_l2=on", "cluster_size=64k");
        Qemu.io(img, "qcow2", "write -P 1 4k 4k", "write -P 2 62k 4k", "write -z 1M 64k", "write -z 2M 8k",
                "write -P 3 2052k 2k", "write -P 4 3M 128k", "write -z 3080k 6k", "discard 3M 64k");
        Oracle.assertAgreesWithQemu(img, dir);
    }

    @Test
    void extendedL2OverBacking() throws Exception {
        Path base = dir.resolve("base.qcow2");
        Qemu.create(base, "qcow2", "4M");
        Qemu.io(base, "qcow2", "write -P 9 0 4M");
        Path top = dir.resolve("top.qcow2");
        Qemu.create(top, "qcow2", "6M", "extended_l2=on", "backing_file=base.qcow2", "backing_fmt=qcow2");
        Qemu.io(top, "qcow2", "write -P 1 4k 4k", "write -P 1 4100k 4k", "write -z 1M 6k", "write -P 2 5M 3k");
        Oracle.assertAgreesWithQemu(top, dir);
    }

    @Test
    void backingChainWithRelativeNamesInOtherDirectories() throws Exception {
        Path a = Files.createDirectories(dir.resolve("a"));
        Path b = Files.createDirectories(dir.resolve("b"));
        Path base = a.resolve("base.raw");
        Qemu.create(base, "raw", "3M");
        Qemu.io(base, "raw", "write -P 1 0 3M");
        Path mid = b.resolve("mid.qcow2");
        Qemu.create(mid, "qcow2", "4M", "backing_file=../a/base.raw", "backing_fmt=raw", "cluster_size=4k");
        Qemu.io(mid, "qcow2", "write -P 2 64k 64k", "write -z 1M 4k", "write -P 3 3M 100k");
        Path top = dir.resolve("top.qcow2");
        Qemu.create(top, "qcow2", "6M", "backing_file=b/mid.qcow2", "backing_fmt=qcow2");
        Qemu.io(top, "qcow2", "write -P 4 70k 10k", "write -z 2M 64k", "write -P 5 5M 4k");
        Oracle.assertAgreesWithQemu(top, dir);
        Oracle.assertAgreesWithQemu(mid, dir);
    }

    @Test
    void backingWithoutStoredFormatIsProbed() throws Exception {
        Path base = dir.resolve("base.qcow2");
        Qemu.create(base, "qcow2", "2M");
        Qemu.io(base, "qcow2", "write -P 7 0 2M");
        Path top = dir.resolve("top.qcow2");
        // qemu-img 7.2 insists on a backing format; diskmorph still creates such images, qemu still opens them
        Dm.run("create", "-q", "-f", "qcow2", "-b", "base.qcow2", top, "2M").ok();
        Qemu.io(top, "qcow2", "write -P 8 100k 10k");
        Oracle.assertAgreesWithQemu(top, dir);
    }

    @Test
    void internalSnapshotsAreListedAndSharedClustersRead() throws Exception {
        Path img = dir.resolve("s.qcow2");
        Qemu.create(img, "qcow2", String.valueOf(SIZE));
        scribble(img);
        Qemu.img("snapshot", "-c", "first", img).ok();
        Qemu.io(img, "qcow2", "write -P 0x99 0 8k", "write -z 3M 64k");
        Qemu.img("snapshot", "-c", "second", img).ok();
        Oracle.assertAgreesWithQemu(img, dir);
        assertTrue(Dm.run("info", img).ok().out().contains("second"));
    }

    @Test
    void metadataPreallocationReportsHolesAsZeroLikeQemu() throws Exception {
        Path img = dir.resolve("p.qcow2");
        Qemu.create(img, "qcow2", "64M", "preallocation=metadata", "cluster_size=4k");
        Qemu.io(img, "qcow2", "write -P 1 1M 8k", "write -P 2 40M 4k");
        Oracle.assertMapEquals(img);
        Oracle.assertBytesEqual(img, dir);
        Path plain = dir.resolve("plain.qcow2");
        Qemu.create(plain, "qcow2", "64M", "preallocation=falloc");
        Oracle.assertMapEquals(plain);
    }

    @Test
    void dirtyImageIsReadableButNotWritable() throws Exception {
        Path img = dir.resolve("d.qcow2");
        Qemu.create(img, "qcow2", "4M", "lazy_refcounts=on");
        Qemu.io(img, "qcow2", "write -P 1 0 64k");
        setIncompatibleBits(img, Qcow2Header.INCOMPAT_DIRTY);
        Oracle.assertMapEquals(img);
        assertEquals(true, Dm.run("info", "--output=json", img).ok().json().get("dirty-flag").asBoolean());
        byte[] before = Files.readAllBytes(img);
        var e = assertThrows(io.diskmorph.image.ImageException.class,
                () -> Images.open(img, OpenOptions.forWriting()).close());
        assertTrue(e.getMessage().contains("check -r all"), e.getMessage());
        assertEquals(0, java.util.Arrays.compare(before, Files.readAllBytes(img)));
    }

    @Test
    void corruptImageOpensReadOnlyOnly() throws Exception {
        Path img = dir.resolve("c.qcow2");
        Qemu.create(img, "qcow2", "4M");
        Qemu.io(img, "qcow2", "write -P 1 0 64k");
        setIncompatibleBits(img, Qcow2Header.INCOMPAT_CORRUPT);
        Oracle.assertMapEquals(img);
        Oracle.assertInfoEquals(img);
        assertThrows(io.diskmorph.image.ImageException.class, () -> Images.open(img, OpenOptions.forWriting()));
    }

    @Test
    void encryptedImageGivesInfoButRefusesData() throws Exception {
        Path img = dir.resolve("enc.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", "--object", "secret,id=s0,data=pw", "-o",
                "encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10", img, "1M").ok();
        var info = Dm.run("info", "--output=json", img).ok().json();
        assertEquals(1048576, info.get("virtual-size").asLong());
        assertTrue(info.get("encrypted").asBoolean());
        try (DiskImage d = Images.open(img, OpenOptions.forReading())) {
            assertThrows(UnsupportedFeatureException.class, () -> d.read(ByteBuffer.allocate(512), 0));
        }
        Dm.Result r = Dm.run("map", img);
        assertTrue(r.exitCode() != 0);
        assertTrue(r.oneLineError().contains("encrypted"));
    }

    @Test
    void externalDataFileIsReadThroughDataStorage() throws Exception {
        Path img = dir.resolve("x.qcow2");
        // qemu resolves a relative data file name against the current directory, so name it absolutely
        Qemu.create(img, "qcow2", "2M", "data_file=" + dir.resolve("x.data"));
        Qemu.io(img, "qcow2", "write -P 5 64k 128k", "write -z 1M 64k");
        Oracle.assertMapEquals(img);
        Oracle.assertBytesEqual(img, dir);
        Oracle.assertInfoEquals(img);
        assertThrows(UnsupportedFeatureException.class, () -> Images.open(img, OpenOptions.forWriting()));
    }

    @Test
    void bitmapsAreListedInInfo() throws Exception {
        Path img = dir.resolve("b.qcow2");
        Qemu.create(img, "qcow2", "4M");
        Qemu.img("bitmap", "--add", img, "b0").ok();
        Qemu.img("bitmap", "--add", "-g", "128k", img, "b1").ok();
        Qemu.io(img, "qcow2", "write -P 1 0 64k");
        Oracle.assertInfoEquals(img);
        Oracle.assertMapEquals(img);
    }

    @Test
    void zeroSizedImage() throws Exception {
        Path img = dir.resolve("z.qcow2");
        Qemu.create(img, "qcow2", "0");
        Oracle.assertInfoEquals(img);
        Path ours = dir.resolve("z2.qcow2");
        Dm.run("create", "-q", "-f", "qcow2", ours, "0").ok();
        Oracle.assertCheckClean(ours);
        Oracle.assertInfoEquals(ours);
    }

    static void setIncompatibleBits(Path img, long bits) throws Exception {
        try (var ch = java.nio.channels.FileChannel.open(img, java.nio.file.StandardOpenOption.READ,
                java.nio.file.StandardOpenOption.WRITE)) {
            ByteBuffer b = ByteBuffer.allocate(8);
            ch.read(b, 72);
            long v = b.flip().getLong() | bits;
            ch.write(ByteBuffer.allocate(8).putLong(0, v), 72);
        }
    }
}
