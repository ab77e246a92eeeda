package io.diskmorph.format.qcow2;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.diskmorph.image.CheckReport;
import io.diskmorph.image.DiskImage;
import io.diskmorph.image.Images;
import io.diskmorph.image.OpenOptions;
import io.diskmorph.image.RepairMode;
import io.diskmorph.testing.Dm;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;

import static io.diskmorph.format.qcow2.Qcow2Files.dataCluster;
import static io.diskmorph.format.qcow2.Qcow2Files.header;
import static io.diskmorph.format.qcow2.Qcow2Files.l1Entry;
import static io.diskmorph.format.qcow2.Qcow2Files.l2Entry;
import static io.diskmorph.format.qcow2.Qcow2Files.putU32;
import static io.diskmorph.format.qcow2.Qcow2Files.putU64;
import static io.diskmorph.format.qcow2.Qcow2Files.refcount;
import static io.diskmorph.format.qcow2.Qcow2Files.setRefcount;
import static io.diskmorph.format.qcow2.Qcow2Files.u64;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * qcow2 check against qemu-img 7.2: clean images across the format's
 * options, and damage planted at offsets computed from the parsed tables.
 * For every image: exit code, JSON counters and the per-problem lines on
 * stderr equal qemu-img check's; then {@code -r leaks} and {@code -r all}
 * on copies report what qemu-img reports, and a qemu-img check of our
 * repaired copy says what it says of qemu's repaired copy.
 */
class Qcow2CheckTest {
    private static final long COPIED = L2Entry.COPIED;

    @TempDir
    Path dir;

    // ---- clean images ----

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = ';', value = {
            "v2; compat=0.10; 8M; snapshot",
            "v3; compat=1.1; 8M; snapshot",
            "512-byte clusters; cluster_size=512; 8M; ",
            "4k clusters; cluster_size=4096; 8M; ",
            "2M clusters; cluster_size=2M; 16M; uncompressed",
            "1-bit refcounts; refcount_bits=1; 8M; ",
            "1-bit refcounts, failed snapshot (leaks); refcount_bits=1; 8M; failed snapshot",
            "8-bit refcounts; refcount_bits=8,cluster_size=4096; 8M; snapshot",
            "64-bit refcounts; refcount_bits=64,cluster_size=4096; 8M; snapshot",
            "extended L2; extended_l2=on; 8M; ",
            "extended L2 2M; extended_l2=on,cluster_size=2M; 16M; uncompressed",
            "zstd; compression_type=zstd; 8M; snapshot",
            "lazy refcounts; lazy_refcounts=on; 8M; ",
            "metadata preallocation; preallocation=metadata,cluster_size=4096; 8M; uncompressed",
            "empty; cluster_size=65536; 0; ",
            "bitmaps; cluster_size=4096; 8M; bitmaps"})
    void cleanImagesAgreeWithQemu(String name, String options, String size, String extra) throws Exception {
        Path f = dir.resolve("clean.qcow2");
        Qemu.create(f, "qcow2", size, options);
        if (!size.equals("0")) {
            Qemu.io(f, "qcow2", "write -P 1 0 100k", "write -z 3M 64k", "write -P 3 5M 7k");
            if (!"uncompressed".equals(extra)) {
                Qemu.io(f, "qcow2", "write -c -P 2 1M 128k");
            }
        }
        if ("snapshot".equals(extra)) {
            Qemu.img("snapshot", "-c", "s1", f).ok();
            Qemu.io(f, "qcow2", "write -P 9 0 64k");
            Qemu.img("snapshot", "-c", "s2", f).ok();
        } else if ("failed snapshot".equals(extra)) {
            // qemu cannot give a cluster refcount 2 in 1 bit: the snapshot fails half-way and leaks
            assertEquals(1, Qemu.img("snapshot", "-c", "s1", f).exitCode());
        } else if ("bitmaps".equals(extra)) {
            Qemu.img("bitmap", "--add", f, "b1").ok();
            Qemu.img("bitmap", "--add", "--granularity", "512", f, "b2").ok();
            Qemu.io(f, "qcow2", "write -P 7 6M 64k");
        }
        assertSameCheck(f);
        // nothing to repair: the file is left alone
        String before = Qcow2Files.digest(f);
        if (!"bitmaps".equals(extra) && !"failed snapshot".equals(extra)) {
            assertEquals(0, Dm.run("check", "-r", "all", f).exitCode());
            assertEquals(before, Qcow2Files.digest(f), "check -r all of a clean image writes nothing");
        }
    }

    // ---- refcounts ----

    @Test
    void refcountZeroForAUsedCluster() throws Exception {
        Path f = plant("zero", g -> setRefcount(g, dataCluster(g, 0), 0));
        assertLikeQemu(f, 2, true);
    }

    @Test
    void refcountsTooHighAreLeaks() throws Exception {
        // unreferenced clusters with a refcount
        Path f = plant("leak", g -> {
            long end = end(g);
            Qcow2Files.extend(g, end + 2 * 65536);
            setRefcount(g, end / 65536, 1);
            setRefcount(g, end / 65536 + 1, 2);
        });
        assertLikeQemu(f, 3, true);
        // a referenced cluster with a refcount above its references: a leak, and its COPIED flag is now wrong
        assertLikeQemu(plant("leak3", g -> setRefcount(g, dataCluster(g, 0), 3)), 2, true);
    }

    @Test
    void clusterReferencedTwiceWithRefcountOne() throws Exception {
        Path f = plant("twice", g -> putU64(g, l2Entry(g, 64 << 10), u64(g, l2Entry(g, 0))));
        assertLikeQemu(f, 2, false);
    }

    @Test
    void refcountTooLowButNotZero() throws Exception {
        Path f = base("snap");
        Qemu.img("snapshot", "-c", "s1", f).ok();
        long shared = dataCluster(f, 0);
        assertEquals(2, refcount(f, shared));
        setRefcount(f, shared, 1);
        assertLikeQemu(f, 2, true);
    }

    @Test
    void refcountOverflowWithOneBitRefcounts() throws Exception {
        Path f = dir.resolve("r1.qcow2");
        Qemu.create(f, "qcow2", "16M", "refcount_bits=1");
        Qemu.io(f, "qcow2", "write -P 1 0 128k");
        putU64(f, l2Entry(f, 1 << 20), u64(f, l2Entry(f, 0)));
        assertLikeQemu(f, 2, false);
    }

    // ---- L1 / L2 entries ----

    @Test
    void misalignedDataCluster() throws Exception {
        Path f = plant("mis", g -> putU64(g, l2Entry(g, 64 << 10), u64(g, l2Entry(g, 64 << 10)) + 512));
        assertLikeQemu(f, 2, false);
    }

    @Test
    void misalignedPreallocatedZeroClusterIsRepairedToAZeroCluster() throws Exception {
        Path f = plant("miszero", g -> putU64(g, l2Entry(g, 3 << 20),
                COPIED | (Files.size(g) - 65536 + 512) | L2Entry.ZERO_FLAG));
        assertLikeQemu(f, 2, false);
        Path ours = dir.resolve("miszero-ours.qcow2");
        Files.copy(f, ours);
        assertEquals(0, Dm.run("check", "-r", "all", ours).exitCode());
        assertEquals(L2Entry.ZERO_FLAG, u64(ours, l2Entry(ours, 3 << 20)), "a plain zero cluster now");
    }

    @Test
    void dataClusterPastTheEndOfTheFile() throws Exception {
        assertLikeQemu(plant("dataeof", g -> putU64(g, l2Entry(g, 3 << 20), COPIED | (end(g) + (1 << 20)))),
                2, false);
    }

    @Test
    void reservedBitsInL1AndL2Entries() throws Exception {
        assertLikeQemu(plant("l1res", g -> putU64(g, l1Entry(g, 0), u64(g, l1Entry(g, 0)) | 1L << 60)), 2, true);
        assertLikeQemu(plant("l2res", g -> putU64(g, l2Entry(g, 0), u64(g, l2Entry(g, 0)) | 1L << 57)), 2, true);
    }

    @Test
    void misalignedL2Table() throws Exception {
        assertLikeQemu(plant("l2mis", g -> putU64(g, l1Entry(g, 0), u64(g, l1Entry(g, 0)) + 512)), 2, false);
    }

    @Test
    void wrongCopiedFlags() throws Exception {
        Path f = plant("copied", g -> {
            putU64(g, l1Entry(g, 0), u64(g, l1Entry(g, 0)) & ~COPIED);
            putU64(g, l2Entry(g, 0), u64(g, l2Entry(g, 0)) & ~COPIED);
        });
        assertLikeQemu(f, 2, true);
        Path snap = base("copiedsnap");
        Qemu.img("snapshot", "-c", "s1", snap).ok();
        // shared with the snapshot (refcount 2) but flagged as exclusively owned
        putU64(snap, l2Entry(snap, 0), u64(snap, l2Entry(snap, 0)) | COPIED);
        putU64(snap, l1Entry(snap, 0), u64(snap, l1Entry(snap, 0)) | COPIED);
        assertLikeQemu(snap, 2, true);
    }

    @Test
    void invalidCompressedDescriptors() throws Exception {
        assertLikeQemu(plant("ccopied", g -> putU64(g, l2Entry(g, 1 << 20), u64(g, l2Entry(g, 1 << 20)) | COPIED)),
                2, true);
        Qcow2Geometry geo = Qcow2Geometry.of(header(base("geo")));
        assertLikeQemu(plant("ceof", g -> {
            long e = u64(g, l2Entry(g, 1 << 20));
            putU64(g, l2Entry(g, 1 << 20), (e & ~geo.compressedOffsetMask) | (end(g) + (4 << 20)));
        }), 2, false);
    }

    @Test
    void zeroFlagInAVersion2ImageIsNotReportedLikeQemu() throws Exception {
        Path f = dir.resolve("v2.qcow2");
        Qemu.create(f, "qcow2", "16M", "compat=0.10");
        Qemu.io(f, "qcow2", "write -P 1 0 128k");
        putU64(f, l2Entry(f, 0), u64(f, l2Entry(f, 0)) | L2Entry.ZERO_FLAG);
        putU64(f, l2Entry(f, 5 << 20), L2Entry.ZERO_FLAG);
        assertLikeQemu(f, 0, false);
    }

    // ---- tables past the end of the file, overlapping metadata ----

    @Test
    void tablesPastTheEndOfTheFile() throws Exception {
        assertLikeQemu(plant("l1eof", g -> putU64(g, 40, 16 << 20)), 2, false);
        assertLikeQemu(plant("rteof", g -> putU64(g, 48, 16 << 20)), 2, false);
        assertLikeQemu(plant("l2eof", g -> putU64(g, l1Entry(g, 0), COPIED | (16 << 20))), 2, false);
    }

    @Test
    void overlappingMetadata() throws Exception {
        assertLikeQemu(plant("l1onrt", g -> putU64(g, 40, header(g).refcountTableOffset)), 2, false);
        assertLikeQemu(plant("l1onheader", g -> putU64(g, 40, 0)), 2, false);
        assertLikeQemu(plant("rtonheader", g -> putU64(g, 48, 0)), 2, false);
        assertLikeQemu(plant("l2onrefblock", g -> putU64(g, l1Entry(g, 0),
                COPIED | u64(g, header(g).refcountTableOffset))), 2, false);
        assertLikeQemu(plant("dataonl1", g -> putU64(g, l2Entry(g, 64 << 10), COPIED | header(g).l1TableOffset)), 2,
                false);
        Path snap = base("snapont");
        Qemu.img("snapshot", "-c", "s1", snap).ok();
        // the snapshot table pointer moved onto the L1 table
        putU64(snap, 64, header(snap).l1TableOffset);
        assertLikeQemu(snap, 2, false);
    }

    // ---- refcount table entries ----

    @Test
    void refcountTableEntriesPointingAtBadPlaces() throws Exception {
        assertLikeQemu(plant("rbmis", g -> putU64(g, header(g).refcountTableOffset,
                u64(g, header(g).refcountTableOffset) + 4096)), 1, false);
        assertLikeQemu(plant("rbres", g -> putU64(g, header(g).refcountTableOffset,
                u64(g, header(g).refcountTableOffset) | 1)), 2, false);
        assertLikeQemu(plant("rbout", g -> putU64(g, header(g).refcountTableOffset + 8, 32 << 20)), 2, false);
        assertLikeQemu(plant("rbout0", g -> putU64(g, header(g).refcountTableOffset, 32 << 20)), 2, false);
        assertLikeQemu(plant("rbdup", g -> putU64(g, header(g).refcountTableOffset + 8,
                u64(g, header(g).refcountTableOffset))), 2, false);
        // bit 63: an offset qemu's block layer refuses to read (EIO for every refcount in the block)
        assertLikeQemu(plant("rb63", g -> putU64(g, header(g).refcountTableOffset,
                u64(g, header(g).refcountTableOffset) | 1L << 63)), 1, false);
        assertLikeQemu(plant("rb63b", g -> putU64(g, header(g).refcountTableOffset + 8, 1L << 63 | 65536)), 2,
                false);
        // no refcount table at all: qemu's check opens it, finds every refcount 0, and -r all rebuilds
        assertLikeQemu(plant("rtnone", g -> putU32(g, 56, 0)), 2, false);
    }

    // ---- snapshots ----

    @Test
    void snapshotTableProblems() throws Exception {
        Path snap = base("snaps");
        Qemu.img("snapshot", "-c", "s1", snap).ok();
        Qemu.io(snap, "qcow2", "write -P 5 0 64k");
        long table = header(snap).snapshotsOffset;
        assertLikeQemu(snap, 0, true);
        assertLikeQemu(plant(snap, "snl1mis", g -> putU64(g, table, u64(g, table) + 512)), 2, false);
        assertLikeQemu(plant(snap, "snl1big", g -> putU32(g, table + 8, 5 << 20)), 2, false);
        // version 3 entries need 16 bytes of extra data: -r all rewrites the table
        assertLikeQemu(plant(snap, "snincomplete", g -> putU32(g, table + 36, 8)), 2, true);
        // more extra data than qemu accepts: the check fails, -r all cuts it
        assertLikeQemu(plant(snap, "snextra", g -> putU32(g, table + 36, 2000)), 1, false);
        // a count beyond the table: entries read as garbage (here: zeros past the end of the table)
        assertLikeQemu(plant(snap, "sncount", g -> putU32(g, 60, 2)), 2, false);
        assertLikeQemu(plant(snap, "sntoomany", g -> putU32(g, 60, 70000)), 1, false);
    }

    @Test
    void snapshotsInAnImageWithAnExternalDataFileAndCompressedClusters() throws Exception {
        Path f = dir.resolve("df.qcow2");
        Path data = dir.resolve("df.raw");
        Qemu.img("create", "-q", "-f", "qcow2", "-o", "data_file=" + data, f, "16M").ok();
        Qemu.io(f, "qcow2", "write -P 1 0 128k");
        assertSameCheck(f);
        putU64(f, l2Entry(f, 1 << 20), L2Entry.COMPRESSED_FLAG | 4096);
        assertSameCheck(f);
    }

    // ---- extended L2 ----

    @Test
    void extendedL2SubclusterBitmaps() throws Exception {
        Path f = dir.resolve("ext.qcow2");
        Qemu.create(f, "qcow2", "16M", "extended_l2=on");
        Qemu.io(f, "qcow2", "write -P 1 0 100k", "write -c -P 2 1M 64k");
        assertSameCheck(f);
        // allocated and zero bits for the same subcluster
        assertLikeQemu(plant(f, "extboth", g -> putU64(g, l2Entry(g, 0) + 8, 0x1_0000_0001L)), 2, false);
        // an unallocated cluster with allocated subclusters
        assertLikeQemu(plant(f, "extunalloc", g -> putU64(g, l2Entry(g, 4 << 20) + 8, 1)), 2, false);
        // a compressed cluster with a bitmap
        assertLikeQemu(plant(f, "extcomp", g -> putU64(g, l2Entry(g, 1 << 20) + 8, 3)), 2, false);
        // misaligned, allocated as zero subclusters only: -r all makes it unallocated-zero
        assertLikeQemu(plant(f, "extmiszero", g -> {
            putU64(g, l2Entry(g, 5 << 20), COPIED | (Files.size(g) - 65536 + 1024));
            putU64(g, l2Entry(g, 5 << 20) + 8, 0xffff_0000_0000L);
        }), 2, false);
    }

    // ---- header bits ----

    @Test
    void dirtyImageIsCheckedAsItIsAndRepairedBeforeWriting() throws Exception {
        Path f = dir.resolve("dirty.qcow2");
        Qemu.create(f, "qcow2", "16M", "lazy_refcounts=on");
        Qemu.io(f, "qcow2", "write -P 1 0 128k");
        // what a crash with lazy refcounts leaves: the dirty bit and a refcount that was never written
        putU64(f, 72, u64(f, 72) | Qcow2Header.INCOMPAT_DIRTY);
        setRefcount(f, dataCluster(f, 64 << 10), 0);
        String before = Qcow2Files.digest(f);
        assertLikeQemu(f, 2, true);
        assertEquals(before, Qcow2Files.digest(f));

        Path ours = dir.resolve("dirty-ours.qcow2");
        Files.copy(f, ours);
        Dm.Result leaksOnly = Dm.run("check", "-r", "leaks", ours);
        assertEquals(1, leaksOnly.exitCode());
        assertEquals(before, Qcow2Files.digest(ours), "a rebuild is needed: -r leaks changes nothing");
        var refused = org.junit.jupiter.api.Assertions.assertThrows(io.diskmorph.image.ImageException.class,
                () -> Images.open(ours, OpenOptions.forWriting()).close());
        assertTrue(refused.getMessage().contains("diskmorph check -r all"), refused.getMessage());

        assertEquals(0, Dm.run("check", "-r", "all", ours).exitCode());
        assertEquals(0, u64(ours, 72) & Qcow2Header.INCOMPAT_DIRTY, "dirty bit cleared");
        try (DiskImage img = Images.open(ours, OpenOptions.forWriting())) {
            img.write(ByteBuffer.wrap(new byte[4096]), 1 << 20);
        }
        Oracle.assertCheckClean(ours);
    }

    @Test
    void corruptBitIsClearedByARepairThatLeavesNoCorruption() throws Exception {
        Path f = plant("corrupt", g -> putU64(g, 72, u64(g, 72) | Qcow2Header.INCOMPAT_CORRUPT));
        assertLikeQemu(f, 0, true);
        Path ours = dir.resolve("corrupt-ours.qcow2");
        Files.copy(f, ours);
        assertEquals(0, Dm.run("check", "-r", "leaks", ours).exitCode());
        assertEquals(0, u64(ours, 72) & Qcow2Header.INCOMPAT_CORRUPT);
        try (DiskImage img = Images.open(ours, OpenOptions.forWriting())) {
            img.write(ByteBuffer.wrap(new byte[512]), 0);
        }
    }

    // ---- bitmaps ----

    /**
     * qemu-img check counts the bitmap directory, tables and data. Its
     * repairs of an image with bitmaps are no exact oracle: opening the
     * image read-write stores the bitmaps again in new clusters (so the end
     * offset differs), and with internal snapshots qemu 7.2 even drops the
     * snapshots (it rewrites the header before the check has loaded the
     * snapshot table, with a count of 0). We keep bitmaps and snapshots.
     */
    @Test
    void bitmapsAreCountedAndKeptByRepairs() throws Exception {
        Path f = dir.resolve("bm.qcow2");
        Qemu.create(f, "qcow2", "16M", "cluster_size=4096");
        Qemu.io(f, "qcow2", "write -P 1 0 100k");
        Qemu.img("bitmap", "--add", f, "b1").ok();
        Qemu.io(f, "qcow2", "write -P 7 6M 64k");
        assertSameCheck(f);
        long size = Files.size(f);
        Qcow2Files.extend(f, size + 4096);
        setRefcount(f, size / 4096, 1);
        setRefcount(f, dataCluster(f, 0), 0);
        assertSameCheck(f);
        Path ours = repairBoth(f, "bm", true);
        assertEquals(0, Qemu.img("compare", f, ours).exitCode());

        Path snap = dir.resolve("bmsnap.qcow2");
        Qemu.create(snap, "qcow2", "16M", "cluster_size=4096");
        Qemu.io(snap, "qcow2", "write -P 1 0 100k");
        Qemu.img("snapshot", "-c", "s1", snap).ok();
        Qemu.img("bitmap", "--add", snap, "b1").ok();
        Qemu.io(snap, "qcow2", "write -P 7 0 64k");
        size = Files.size(snap);
        Qcow2Files.extend(snap, size + 4096);
        setRefcount(snap, size / 4096, 1);
        assertSameCheck(snap);
        ours = repairBoth(snap, "bmsnap", false);
        Oracle.assertCheckClean(ours);
        assertEquals(1, Qemu.img("info", "--output=json", ours).ok().json().path("snapshots").size(),
                "our repair keeps the snapshot");
        assertTrue(Qemu.img("info", "--output=json", dir.resolve("bmsnap-theirs.qcow2")).ok().json()
                .path("snapshots").isMissingNode(), "qemu 7.2's repair dropped it");
    }

    /**
     * -r all on two copies; with {@code sameCounters} the JSON equals
     * qemu-img's but for the end offset. Our copy keeps the bitmaps and
     * snapshots and checks clean with qemu-img.
     */
    private Path repairBoth(Path f, String name, boolean sameCounters) throws IOException {
        JsonNode infoBefore = Qemu.img("info", "--output=json", f).ok().json();
        Path ours = dir.resolve(name + "-ours.qcow2");
        Path theirs = dir.resolve(name + "-theirs.qcow2");
        Files.copy(f, ours);
        Files.copy(f, theirs);
        Dm.Result d = Dm.run("check", "-r", "all", "--output=json", ours);
        Qemu.Result q = Qemu.img("check", "-r", "all", "--output=json", theirs);
        assertEquals(q.exitCode(), d.exitCode(), d.err());
        if (sameCounters) {
            assertEquals(((ObjectNode) json(q.out())).without("image-end-offset"),
                    ((ObjectNode) json(d.out())).without("image-end-offset"));
        }
        Oracle.assertCheckClean(ours);
        JsonNode infoAfter = Qemu.img("info", "--output=json", ours).ok().json();
        assertEquals(infoBefore.path("format-specific").path("data").path("bitmaps"),
                infoAfter.path("format-specific").path("data").path("bitmaps"));
        assertEquals(infoBefore.get("snapshots"), infoAfter.get("snapshots"));
        return ours;
    }

    // ---- no writes when nothing can be done ----

    @Test
    void impossibleRepairsLeaveTheFileByteIdentical() throws Exception {
        // a rebuild is needed, -r leaks may not do it
        Path zero = plant("imp-zero", g -> setRefcount(g, dataCluster(g, 0), 0));
        String before = Qcow2Files.digest(zero);
        assertEquals(1, Dm.run("check", "-r", "leaks", zero).exitCode());
        assertEquals(before, Qcow2Files.digest(zero));
        // the rebuilt refcount block would land where the misaligned old one points: qemu refuses to write
        Path mis = plant("imp-mis", g -> putU64(g, header(g).refcountTableOffset,
                u64(g, header(g).refcountTableOffset) + 4096));
        before = Qcow2Files.digest(mis);
        Dm.Result r = Dm.run("check", "-r", "all", mis);
        assertEquals(1, r.exitCode());
        assertTrue(r.err().contains("Check failed: Input/output error"), r.err());
        assertEquals(before, Qcow2Files.digest(mis));
        // a check without -r never writes, whatever it finds
        for (Path p : List.of(zero, mis)) {
            before = Qcow2Files.digest(p);
            Dm.run("check", p);
            assertEquals(before, Qcow2Files.digest(p));
        }
    }

    /** Through the API: qemu's counters, and the image stays usable after an in-place repair. */
    @Test
    void repairThroughTheApiKeepsTheImageUsable() throws Exception {
        Path f = plant("api", g -> {
            setRefcount(g, dataCluster(g, 0), 0);
            putU64(g, l2Entry(g, 64 << 10), u64(g, l2Entry(g, 64 << 10)) & ~COPIED);
        });
        JsonNode q = Qemu.check(f, "qcow2").json();
        try (DiskImage img = Images.open(f, OpenOptions.forWriting().withFormat("qcow2").withForCheck(true))) {
            CheckReport r = img.check(RepairMode.NONE);
            assertEquals(q.get("corruptions").asLong(), r.corruptions);
            assertEquals(q.get("image-end-offset").asLong(), r.imageEndOffset);
            assertEquals(q.get("total-clusters").asLong(), r.totalClusters);
            assertEquals(q.get("allocated-clusters").asLong(), r.allocatedClusters);
            assertFalse(r.repaired);
            assertTrue(r.messages.contains("ERROR cluster " + dataCluster(f, 0) + " refcount=0 reference=1"),
                    r.messages.toString());
            CheckReport fixed = img.check(RepairMode.ALL);
            assertTrue(fixed.repaired);
            assertTrue(fixed.isClean(), fixed.messages.toString());
            assertTrue(fixed.corruptionsFixed >= 2);
            byte[] guest = new byte[128 << 10];
            img.read(ByteBuffer.wrap(guest), 0);
            assertEquals(1, guest[0]);
            assertEquals(1, guest[(128 << 10) - 1]);
        }
        try (DiskImage img = Images.open(f, OpenOptions.forWriting().withFormat("qcow2"))) {
            img.write(ByteBuffer.wrap(new byte[65536]), 2 << 20);
            assertTrue(img.check(RepairMode.NONE).isClean());
        }
        Oracle.assertCheckClean(f);
    }

    @Test
    void largeSparseImageWithScatteredWrites() throws Exception {
        Path f = dir.resolve("big.qcow2");
        Qemu.create(f, "qcow2", "4T");
        List<String> writes = new ArrayList<>();
        java.util.Random rnd = new java.util.Random(7);
        for (int i = 0; i < 60; i++) {
            writes.add("write -P " + (i + 1) + " " + (rnd.nextLong(1L << 26) << 16) + " 64k");
        }
        Qemu.io(f, "qcow2", writes.toArray(String[]::new));
        assertSameCheck(f);
        setRefcount(f, dataCluster(f, Long.parseLong(writes.get(3).split(" ")[3])), 0);
        assertLikeQemu(f, 2, true);
    }

    // ---- helpers ----

    interface Damage {
        void apply(Path f) throws IOException;
    }

    /** 16 MiB, 64 KiB clusters: data at 0-128k, a compressed cluster at 1M, a zero cluster at 2M. */
    private Path base(String name) {
        Path f = dir.resolve(name + ".qcow2");
        Qemu.create(f, "qcow2", "16M");
        Qemu.io(f, "qcow2", "write -P 1 0 128k", "write -c -P 2 1M 64k", "write -z 2M 64k");
        return f;
    }

    /** The file size rounded up to whole 64 KiB clusters. */
    private static long end(Path f) throws IOException {
        return (Files.size(f) + 65535) & ~65535L;
    }

    private Path plant(String name, Damage d) throws IOException {
        Path f = base(name);
        d.apply(f);
        return f;
    }

    private Path plant(Path from, String name, Damage d) throws IOException {
        Path f = dir.resolve(name + ".qcow2");
        Files.copy(from, f, StandardCopyOption.REPLACE_EXISTING);
        d.apply(f);
        return f;
    }

    /**
     * The check agrees with qemu-img's; then, on copies, -r leaks and -r all
     * report what qemu-img reports, leave images qemu-img judges alike, and
     * (when {@code contentKept}) the same guest content.
     */
    private void assertLikeQemu(Path f, int expectedExit, boolean contentKept) throws IOException {
        Qemu.Result q = Qemu.check(f, "qcow2");
        assertEquals(expectedExit, q.exitCode(), "qemu-img check of " + f + ": " + q.out() + q.err());
        assertSameCheck(f);
        for (String mode : List.of("leaks", "all")) {
            Path theirs = dir.resolve(f.getFileName() + "." + mode + ".q");
            Path ours = dir.resolve(f.getFileName() + "." + mode + ".d");
            Files.copy(f, theirs, StandardCopyOption.REPLACE_EXISTING);
            Files.copy(f, ours, StandardCopyOption.REPLACE_EXISTING);
            Qemu.Result qr = Qemu.img("check", "-f", "qcow2", "-r", mode, "--output=json", theirs);
            Dm.Result dr = Dm.run("check", "-f", "qcow2", "-r", mode, "--output=json", ours);
            String what = f.getFileName() + " -r " + mode;
            assertEquals(qr.exitCode(), dr.exitCode(), what + ": " + dr.err() + "\nqemu: " + qr.err());
            assertEquals(json(qr.out()), json(dr.out()), what);
            if (!qr.out().isBlank()) {
                assertEquals(fieldOrder(qr.out()), fieldOrder(dr.out()), what + ": JSON key order");
            }
            assertSameLines(qr.err(), dr.err(), what);
            if (dr.out().isBlank() && mode.equals("leaks")) {
                assertEquals(Qcow2Files.digest(f), Qcow2Files.digest(ours), what + " failed: file untouched");
            }
            Qemu.Result qa = Qemu.check(theirs, "qcow2");
            Qemu.Result da = Qemu.check(ours, "qcow2");
            assertEquals(qa.exitCode(), da.exitCode(), what + ", checked again: " + da.err() + "\nqemu: " + qa.err());
            assertEquals(json(qa.out()), json(da.out()), what + ", checked again");
            // what the guest sees: as in qemu's repaired copy, and (contentKept) as before the repair
            if (Qemu.img("compare", "-f", "qcow2", "-F", "qcow2", theirs, theirs).exitCode() == 0) {
                assertEquals(0, Qemu.img("compare", "-f", "qcow2", "-F", "qcow2", theirs, ours).exitCode(),
                        what + ": guest content as in qemu's repaired copy");
            }
            if (contentKept) {
                assertEquals(0, Qemu.img("compare", "-f", "qcow2", "-F", "qcow2", f, ours).exitCode(),
                        what + ": guest content kept");
            }
        }
    }

    /** Exit code, JSON and stderr lines of diskmorph check equal qemu-img check's. */
    static void assertSameCheck(Path f) {
        Qemu.Result q = Qemu.check(f, "qcow2");
        Dm.Result d = Dm.run("check", "-f", "qcow2", "--output=json", f);
        assertEquals(q.exitCode(), d.exitCode(), "check " + f + ": " + d.err() + "\nqemu: " + q.err());
        assertEquals(json(q.out()), json(d.out()), "check " + f);
        assertSameLines(q.err(), d.err(), "stderr of check " + f);
        if (!q.out().isBlank()) {
            assertEquals(fieldOrder(q.out()), fieldOrder(d.out()), "JSON key order of check " + f);
        }
    }

    private static JsonNode json(String out) {
        if (out.isBlank()) {
            return null;
        }
        try {
            return ((ObjectNode) Qemu.JSON.readTree(out)).without("filename");
        } catch (IOException e) {
            throw new AssertionError("not JSON: " + out, e);
        }
    }

    private static String fieldOrder(String out) {
        JsonNode n = json(out);
        assertNotNull(n);
        StringBuilder sb = new StringBuilder();
        n.fieldNames().forEachRemaining(k -> sb.append(k).append(','));
        return sb.toString();
    }

    /**
     * The same per-problem lines on stderr; where we stopped keeping lines
     * (10000), the lines before and the ones after the cut.
     */
    private static void assertSameLines(String qemuErr, String ourErr, String what) {
        List<String> q = lines(qemuErr);
        List<String> d = lines(ourErr);
        int cut = -1;
        for (int i = 0; i < d.size(); i++) {
            if (d.get(i).matches("\\.\\.\\. \\d+ more problem lines not shown")) {
                cut = i;
            }
        }
        if (cut >= 0) {
            int tail = d.size() - cut - 1;
            assertTrue(q.size() >= cut + tail, what + ": qemu printed fewer lines");
            q = new ArrayList<>(q.subList(0, cut));
            q.addAll(lines(qemuErr).subList(lines(qemuErr).size() - tail, lines(qemuErr).size()));
            d = new ArrayList<>(d.subList(0, cut));
            d.addAll(lines(ourErr).subList(cut + 1, lines(ourErr).size()));
        }
        for (int i = 0; i < Math.min(q.size(), d.size()); i++) {
            assertEquals(q.get(i), d.get(i), what + ": stderr line " + i);
        }
        assertEquals(q.size(), d.size(), what + ": stderr lines " + (q.size() > d.size() ? q.subList(d.size(),
                q.size()) : d.subList(q.size(), d.size())));
    }

    /**
     * stderr lines without the program name; qemu's wording for marking an
     * image corrupt becomes ours (we never set the corrupt bit ourselves).
     */
    private static List<String> lines(String err) {
        List<String> out = new ArrayList<>();
        for (String l : err.split("\n")) {
            if (l.isBlank()) {
                continue;
            }
            l = l.replaceFirst("^(qemu-img|diskmorph): ", "");
            l = l.replaceFirst("^qcow2: Marking image as corrupt: (.*); further corruption events will be "
                    + "suppressed$", "qcow2: Image is corrupt: $1; further non-fatal corruption events will be "
                    + "suppressed");
            out.add(l);
        }
        return out;
    }
}
