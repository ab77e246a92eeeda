package io.diskmorph.format.qed;

import com.fasterxml.jackson.databind.JsonNode;
import io.diskmorph.image.DiskImage;
import io.diskmorph.image.Images;
import io.diskmorph.image.OpenOptions;
import io.diskmorph.testing.Dm;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** QED images made and written by qemu: diskmorph reads, maps, checks and describes them as qemu does. */
class QedReadTest {
    @TempDir
    Path dir;

    /**
     * qemu-made images over the cluster/table size matrix, with partial
     * writes, writes across clusters and L2 tables, zero clusters, partial
     * zero writes, discards (a no-op in QED) and a disk end inside a cluster.
     */
    @ParameterizedTest(name = "cluster_size={0} table_size={1}")
    @CsvSource({"4096,2", "4096,4", "4096,16", "65536,2", "65536,4", "65536,16", "1048576,2", "1048576,4",
            "1048576,16"})
    void qemuImagesReadLikeQemu(long c, long t) throws Exception {
        long coverage = t * c / 8 * c;
        long size = Math.min(2 * coverage, 3L << 30) + 1536; // not a multiple of the cluster size
        Path f = dir.resolve("m.qed");
        Qemu.create(f, "qed", String.valueOf(size), "cluster_size=" + c, "table_size=" + t);
        long second = coverage + c / 2 + c < size ? coverage + c / 2 : size / 2; // in the second L2 table if any
        Qemu.io(f, "qed",
                "write -P 0x11 512 3k",
                "write -P 0x22 " + (c - 1024) + " 2k",
                "write -z " + 4 * c + " " + c,
                "write -P 0x55 " + (4 * c + 512) + " 512",
                "write -z " + (6 * c + 512) + " 1k",
                "write -z " + 8 * c + " " + 2 * c,
                "discard 0 " + c,
                "write -P 0x33 " + second + " " + c,
                "write -P 0x44 " + (size - 1024) + " 1024");
        assertEquals(0, Files.size(f) % c, "qemu keeps QED files a multiple of the cluster size");
        QedFiles.assertSameMap(f, "qed");
        QedFiles.assertSameMap(f, null);
        Path raw = dir.resolve("m.raw");
        Qemu.toRaw(f, "qed", raw);
        QedFiles.assertSameGuestBytes(f, "qed", raw);
        assertEquals(0, Dm.run("compare", f, raw).exitCode());
        assertEquals(Qemu.img("info", "--output=json", f).ok().json(), Dm.run("info", "--output=json", f).ok().json());
        assertSameCheck(f);
        // one differing byte where the image reads zeros: same verdict and wording as qemu-img compare
        Qemu.io(raw, "raw", "write -P 0x99 " + (4 * c + 4096) + " 1");
        Qemu.Result q = Qemu.img("compare", f, raw);
        Dm.Result d = Dm.run("compare", f, raw);
        assertEquals(1, q.exitCode());
        assertEquals(q.exitCode(), d.exitCode());
        assertEquals(q.out().strip(), d.out().strip());
    }

    @Test
    void infoAndHumanOutputAgree() {
        Path f = dir.resolve("i.qed");
        Qemu.create(f, "qed", "3G");
        Qemu.io(f, "qed", "write -P 1 1M 128k");
        JsonNode q = Qemu.img("info", "--output=json", f).ok().json();
        JsonNode d = Dm.run("info", "--output=json", f).ok().json();
        assertEquals(q, d);
        String human = Dm.run("info", f).ok().out();
        assertTrue(human.contains("file format: qed"));
        assertTrue(human.contains("virtual size: 3 GiB (3221225472 bytes)"));
        assertTrue(human.contains("cluster_size: 65536"));
    }

    @Test
    void rawBackingFileIsNotProbed() throws Exception {
        Path base = dir.resolve("base.raw");
        Qemu.create(base, "raw", "3M");
        Qemu.io(base, "raw", "write -P 0x61 0 3M");
        Path top = dir.resolve("top.qed");
        Qemu.create(top, "qed", "4M", "backing_file=base.raw", "backing_fmt=raw", "cluster_size=4096",
                "table_size=2");
        assertEquals(QedHeader.F_BACKING_FILE | QedHeader.F_BACKING_FORMAT_NO_PROBE,
                QedFiles.u64(top, 16), "qemu records raw as bit 0x4");
        Qemu.io(top, "qed", "write -P 0x62 1000 100", "write -z 64k 4k", "write -P 0x63 3M 8k",
                "write -P 0x64 " + (3 * 1024 * 1024 - 1024) + " 2k");
        assertChainAgrees(top);
        try (DiskImage img = Images.open(top, OpenOptions.forReading())) {
            assertEquals("raw", img.backingFormat());
            assertEquals("base.raw", img.backingFileName());
        }
    }

    @Test
    void qedOverQedIsProbedAndRelativeNamesResolveAgainstTheImage() throws Exception {
        Path sub = Files.createDirectories(dir.resolve("sub"));
        Path base = dir.resolve("base.qed");
        Qemu.create(base, "qed", "2M", "cluster_size=4096", "table_size=4");
        Qemu.io(base, "qed", "write -P 0x71 0 1M", "write -z 8k 8k");
        Path mid = sub.resolve("mid.qed");
        Qemu.create(mid, "qed", "3M", "backing_file=../base.qed", "backing_fmt=qed", "cluster_size=4096",
                "table_size=2");
        assertEquals(QedHeader.F_BACKING_FILE, QedFiles.u64(mid, 16), "a non-raw backing format is probed");
        Qemu.io(mid, "qed", "write -P 0x72 4k 4k", "write -P 0x73 10000 3000", "write -z 512k 64k");
        Path top = dir.resolve("top.qed");
        Qemu.create(top, "qed", "3M", "backing_file=sub/mid.qed", "backing_fmt=qed", "cluster_size=65536");
        Qemu.io(top, "qed", "write -P 0x74 100k 1k");
        assertChainAgrees(top);
        JsonNode q = Qemu.img("info", "--output=json", "--backing-chain", top).ok().json();
        JsonNode d = Dm.run("info", "--output=json", "--backing-chain", top).ok().json();
        assertEquals(q, d);
    }

    private void assertChainAgrees(Path top) throws Exception {
        QedFiles.assertSameMap(top, "qed");
        Path raw = dir.resolve(top.getFileName() + ".raw");
        Qemu.toRaw(top, "qed", raw);
        QedFiles.assertSameGuestBytes(top, "qed", raw);
        assertEquals(Qemu.img("info", "--output=json", top).ok().json(), Dm.run("info", "--output=json", top).ok().json());
        assertEquals(0, Qemu.compare(top, raw));
        assertEquals(0, Dm.run("compare", top, raw).exitCode());
        assertSameCheck(top);
    }

    /** qemu checks only the first cluster of a host-contiguous run; an isolated bad cluster fails the map. */
    @Test
    void invalidDataOffsetsFollowQemusMapRule() throws Exception {
        Path f = dir.resolve("bad.qed");
        Qemu.create(f, "qed", "8M", "cluster_size=4096", "table_size=2");
        Qemu.io(f, "qed", "write -P 1 0 8k", "write -P 2 4M 4k");
        QedFiles.Layout l = QedFiles.layout(f);
        long l2 = QedFiles.l2Of(f, 0);
        long end = Files.size(f);
        // entries 2, 3: the file's last cluster, then one past the end (contiguous with it)
        QedFiles.putU64(f, l2 + 16, end - l.clusterSize());
        QedFiles.putU64(f, l2 + 24, end);
        QedFiles.assertSameMap(f, "qed");
        Path raw = dir.resolve("bad.raw");
        Qemu.toRaw(f, "qed", raw);
        QedFiles.assertSameGuestBytes(f, "qed", raw);
        // an isolated cluster past the end: qemu-img map fails, so do we (one line, no stack trace)
        QedFiles.putU64(f, l2 + 40, end + 4 * l.clusterSize());
        assertNotEquals(0, Qemu.img("map", "--output=json", f).exitCode());
        Dm.Result r = Dm.run("map", "--output=json", f);
        assertNotEquals(0, r.exitCode());
        assertTrue(r.oneLineError().contains("QED L2 table"), r.err());
    }

    /**
     * A host-contiguous run longer than 1 GiB whose first cluster is valid and
     * the rest past the end of the file: qemu-img map asks for the whole rest
     * of the disk and reports one extent; we ask ChainMap's 1 GiB at a time
     * and must not reject the continuation.
     */
    @Test
    void runsLongerThanOneQueryAreValidatedOnceLikeQemu() throws Exception {
        Path f = dir.resolve("long.qed");
        Qemu.create(f, "qed", "4G", "cluster_size=65536", "table_size=4");
        Qemu.io(f, "qed", "write -P 1 0 64k");
        long l2 = QedFiles.l2Of(f, 0);
        long first = QedFiles.u64(f, l2);
        ByteBuffer run = ByteBuffer.allocate(20000 * 8).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < 20000; i++) {
            run.putLong(first + i * 65536L);
        }
        QedFiles.write(f, l2, run.flip());
        List<Qemu.MapLine> q = Qemu.map(f, "qed");
        assertEquals(20000 * 65536L, q.get(0).length(), "one extent in qemu");
        assertEquals(q, Dm.map(f, "qed"));
    }

    /**
     * need-check is the dirty flag. qemu 7.2 prints dirty-flag false anyway:
     * its read-only open starts the need-check timer, and the first drain
     * clears the flag in memory (the header write fails read-only).
     */
    @Test
    void needCheckIsReportedAsDirtyWithoutTouchingTheFile() throws Exception {
        Path f = dir.resolve("nc.qed");
        Qemu.create(f, "qed", "1M");
        Qemu.io(f, "qed", "write -P 3 0 4k");
        QedFiles.putU64(f, 16, QedHeader.F_NEED_CHECK);
        String before = QedFiles.digest(f);
        assertTrue(Dm.run("info", "--output=json", f).ok().json().get("dirty-flag").asBoolean());
        assertFalse(Qemu.img("info", "--output=json", f).ok().json().get("dirty-flag").asBoolean());
        QedFiles.assertSameMap(f, "qed");
        assertSameCheck(f);
        assertEquals(before, QedFiles.digest(f), "reading never writes");
    }

    /** The check counters of qemu-img check --output=json and exit code, field by field. */
    static void assertSameCheck(Path f) {
        Qemu.Result q = Qemu.check(f, "qed");
        Dm.Result d = Dm.run("check", "-f", "qed", "--output=json", f);
        assertEquals(q.exitCode(), d.exitCode(), "check exit code: " + d.err());
        assertEquals(q.json(), d.json(), "check JSON");
    }
}
