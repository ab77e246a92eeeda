package io.diskmorph.format.qcow2;

import io.diskmorph.image.DiskImage;
import io.diskmorph.image.ExitCodes;
import io.diskmorph.image.ImageException;
import io.diskmorph.image.Images;
import io.diskmorph.image.OpenOptions;
import io.diskmorph.testing.Dm;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Broken headers and tables: a one-line error through the CLI, a non-zero
 * exit code, and the file left unchanged; and create options qcow2 cannot
 * honour, rejected before any file exists.
 */
class Qcow2HostileTest {
    @TempDir
    Path dir;

    private Path goodImage() {
        Path base = dir.resolve("base.qcow2");
        Qemu.create(base, "qcow2", "4M");
        Path img = dir.resolve("h.qcow2");
        Qemu.create(img, "qcow2", "4M", "backing_file=" + base, "backing_fmt=qcow2");
        return img;
    }

    private static void patch(Path img, long offset, byte[] bytes) throws Exception {
        try (FileChannel ch = FileChannel.open(img, StandardOpenOption.WRITE)) {
            ch.write(ByteBuffer.wrap(bytes), offset);
        }
    }

    private static byte[] be(long v, int len) {
        ByteBuffer b = ByteBuffer.allocate(8).putLong(v);
        return Arrays.copyOfRange(b.array(), 8 - len, 8);
    }

    /** Every command fails with one line and leaves the file as it was. */
    private void assertRefused(Path img, String expectedWords) throws Exception {
        byte[] before = Files.readAllBytes(img);
        for (String cmd : new String[]{"info", "map", "compare"}) {
            Dm.Result r = cmd.equals("compare") ? Dm.run(cmd, img, img) : Dm.run(cmd, img);
            assertTrue(r.exitCode() != 0, cmd + " should fail: " + r.out());
            String line = r.oneLineError();
            assertTrue(line.toLowerCase().contains(expectedWords.toLowerCase()), cmd + ": " + line);
        }
        assertThrows(ImageException.class, () -> {
            try (DiskImage d = Images.open(img, OpenOptions.forWriting().withFollowBacking(false))) {
                d.write(ByteBuffer.wrap(new byte[4096]), 0);
            }
        });
        assertEquals(-1, Arrays.mismatch(before, Files.readAllBytes(img)), "file unchanged");
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = ';', value = {
            "cluster_bits 40; 20; 4; 40; cluster_bits",
            "cluster_bits 8; 20; 4; 8; cluster_bits",
            "absurd l1_size; 36; 4; 2147483647; L1 table too large",
            "l1_size too small; 36; 4; 0; L1 table has 0 entries",
            "absurd refcount_table_clusters; 56; 4; 4294967295; refcount table too large",
            "no refcount table; 56; 4; 0; no refcount table",
            "L1 offset past EOF; 40; 8; 1099511627776; past the end",
            "L1 offset misaligned; 40; 8; 196609; L1 table offset",
            "refcount table misaligned; 48; 8; 65540; refcount table offset",
            "unknown incompatible bit; 72; 8; 1048576; unsupported qcow2 feature",
            "header_length too short; 100; 4; 50; header_length",
            "refcount_order 7; 96; 4; 7; refcount_order",
            "version 4; 4; 4; 4; version",
            "backing name too long; 16; 4; 4000; backing file name too long",
            "backing offset past the cluster; 8; 8; 1048576; backing_file_offset",
            "huge virtual size; 24; 8; 9223372036854775807; too large",
            "snapshot count; 60; 4; 100000; snapshot table too large",
            "unknown crypt method; 32; 4; 9; encryption method"})
    void brokenHeaderFields(String name, long offset, int len, long value, String words) throws Exception {
        Path img = goodImage();
        patch(img, offset, be(value, len));
        assertRefused(img, words);
    }

    @Test
    void truncatedFiles() throws Exception {
        Path img = goodImage();
        byte[] all = Files.readAllBytes(img);
        Files.write(img, Arrays.copyOf(all, 50));
        assertRefused(img, "too short");
        Files.write(img, Arrays.copyOf(all, 4096));
        assertRefused(img, "past the end of the file");
    }

    @Test
    void extensionLongerThanTheHeaderCluster() throws Exception {
        Path img = goodImage();
        // first extension (backing format) claims 1 MiB of data
        patch(img, 112 + 4, be(1 << 20, 4));
        assertRefused(img, "too large");
    }

    @Test
    void misalignedTableEntriesAreCorruptionAtUse() throws Exception {
        Path img = dir.resolve("t.qcow2");
        Qemu.create(img, "qcow2", "4M");
        Qemu.io(img, "qcow2", "write -P 1 0 64k", "write -P 2 2M 64k");
        byte[] all = Files.readAllBytes(img);
        ByteBuffer b = ByteBuffer.wrap(all);
        long l1 = b.getLong(40);
        long l2 = b.getLong((int) l1) & L1Entry.OFFSET_MASK;
        // L2 entry of guest cluster 32 (2M) points 512 bytes into a cluster
        patch(img, l2 + 32 * 8, be(b.getLong((int) (l2 + 32 * 8)) + 512, 8));
        Dm.Result r = Dm.run("map", img);
        assertEquals(ExitCodes.CORRUPT, r.exitCode());
        assertTrue(r.oneLineError().contains("not cluster-aligned"), r.err());
        // the allocation test fails on the damaged entry: qemu-img's code 3, as qemu-img itself answers
        assertEquals(ExitCodes.COMPARE_ALLOCATION_FAILED, Qemu.img("compare", img, img).exitCode());
        assertEquals(ExitCodes.COMPARE_ALLOCATION_FAILED, Dm.run("compare", img, img).exitCode());
        // L1 entry misaligned
        patch(img, l1, be(b.getLong((int) l1) + 512, 8));
        r = Dm.run("map", img);
        assertTrue(r.exitCode() != 0);
        assertTrue(r.oneLineError().contains("L2 table offset"), r.err());
        byte[] before = Files.readAllBytes(img);
        assertThrows(ImageException.class, () -> {
            try (DiskImage d = Images.open(img, OpenOptions.forWriting())) {
                d.write(ByteBuffer.wrap(new byte[512]), 0);
            }
        });
        assertEquals(-1, Arrays.mismatch(before, Files.readAllBytes(img)));
    }

    @Test
    void dataClusterOverlappingMetadataIsNotWrittenTo() throws Exception {
        Path img = dir.resolve("o.qcow2");
        Qemu.create(img, "qcow2", "4M");
        Qemu.io(img, "qcow2", "write -P 1 0 64k");
        ByteBuffer b = ByteBuffer.wrap(Files.readAllBytes(img));
        long l1 = b.getLong(40);
        long l2 = b.getLong((int) l1) & L1Entry.OFFSET_MASK;
        // guest cluster 0 now claims the refcount table's cluster as its data (refcount 1, so "in place")
        patch(img, l2, be(b.getLong(48) | L2Entry.COPIED, 8));
        byte[] before = Files.readAllBytes(img);
        try (DiskImage d = Images.open(img, OpenOptions.forWriting())) {
            var e = assertThrows(ImageException.class, () -> d.write(ByteBuffer.wrap(new byte[512]), 0));
            assertTrue(e.getMessage().contains("overlaps"), e.getMessage());
        }
        assertEquals(-1, Arrays.mismatch(before, Files.readAllBytes(img)));
    }

    @ParameterizedTest(name = "-o {0}")
    @CsvSource(delimiter = ';', value = {
            "compat=0.10,refcount_bits=8; refcount_bits",
            "refcount_bits=3; refcount_bits",
            "refcount_bits=128; refcount_bits",
            "cluster_size=1000; cluster_size",
            "cluster_size=4M; cluster_size",
            "cluster_size=256; cluster_size",
            "extended_l2=on,cluster_size=8k; extended_l2",
            "extended_l2=on,compat=0.10; extended_l2",
            "lazy_refcounts=on,compat=0.10; lazy_refcounts",
            "compression_type=zstd,compat=0.10; compression_type",
            "compression_type=lz4; compression_type",
            "compat=2; compat",
            "preallocation=full; preallocation",
            "encryption=on; encryption",
            "data_file=x.raw; data_file",
            "backing_fmt=qcow2; backing_fmt"})
    void badCreateOptions(String options, String option) {
        Path img = dir.resolve("bad.qcow2");
        Dm.Result r = Dm.run("create", "-f", "qcow2", "-o", options, img, "16M");
        assertEquals(ExitCodes.USAGE, r.exitCode(), r.err());
        assertTrue(r.oneLineError().contains(option), r.err());
        assertFalse(Files.exists(img), "nothing created");
    }

    @Test
    void virtualSizeBeyondTheL1Limit() {
        Path img = dir.resolve("huge.qcow2");
        Dm.Result r = Dm.run("create", "-f", "qcow2", "-o", "cluster_size=512", img, "200G");
        assertEquals(ExitCodes.USAGE, r.exitCode(), r.err());
        assertTrue(r.oneLineError().contains("cluster_size"), r.err());
        assertFalse(Files.exists(img));
    }
}
