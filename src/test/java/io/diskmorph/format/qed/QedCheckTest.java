package io.diskmorph.format.qed;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.diskmorph.image.CheckReport;
import io.diskmorph.image.DiskImage;
import io.diskmorph.image.Images;
import io.diskmorph.image.OpenOptions;
import io.diskmorph.image.RepairMode;
import io.diskmorph.testing.Dm;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Damage planted at computed offsets in qemu-made images: our check counts
 * what qemu-img check counts, and {@code -r leaks} / {@code -r all} change
 * the file exactly as qemu-img check -r does (qemu repairs invalid L1/L2
 * entries by dropping them in either mode, never leaks, never double
 * references).
 */
class QedCheckTest {
    @TempDir
    Path dir;

    private Path base;
    private QedFiles.Layout layout;
    private long c;
    private long l2a;
    private long l2b;

    /** 8 MiB, 4 KiB clusters, 4 MiB per L2 table: data at 0-8k and 4M, a zero cluster at 64k. */
    @BeforeEach
    void makeBase() throws IOException {
        base = dir.resolve("base.qed");
        Qemu.create(base, "qed", "8M", "cluster_size=4096", "table_size=2");
        Qemu.io(base, "qed", "write -P 1 0 8k", "write -P 2 4M 4k", "write -z 64k 4k");
        layout = QedFiles.layout(base);
        c = layout.clusterSize();
        l2a = QedFiles.l2Of(base, 0);
        l2b = QedFiles.l2Of(base, 1);
        assertTrue(l2a != 0 && l2b != 0);
    }

    private Path plant(String name, Damage d) throws IOException {
        Path f = dir.resolve(name + ".qed");
        Files.copy(base, f, StandardCopyOption.REPLACE_EXISTING);
        d.apply(f);
        return f;
    }

    interface Damage {
        void apply(Path f) throws IOException;
    }

    @Test
    void cleanImage() throws Exception {
        assertSameAsQemu(base, 0);
    }

    @Test
    void misalignedDataOffset() throws Exception {
        assertSameAsQemu(plant("mis", f -> QedFiles.putU64(f, l2a + 8, QedFiles.u64(f, l2a + 8) + 2048)), 2);
    }

    @Test
    void dataOffsetPastTheEndOfTheFile() throws Exception {
        assertSameAsQemu(plant("eof", f -> QedFiles.putU64(f, l2a + 8, Files.size(f))), 2);
    }

    @Test
    void dataClusterReferencedTwice() throws Exception {
        assertSameAsQemu(plant("twice", f -> QedFiles.putU64(f, l2b + 8, QedFiles.u64(f, l2a))), 2);
    }

    @Test
    void dataClusterOverlappingTheL1Table() throws Exception {
        assertSameAsQemu(plant("overL1", f -> QedFiles.putU64(f, l2a + 16, layout.l1Offset())), 2);
    }

    @Test
    void l1EntryMisalignedPastTheEndOrOne() throws Exception {
        assertSameAsQemu(plant("l1mis", f -> QedFiles.putU64(f, layout.l1EntryOffset(1), l2b + 512)), 2);
        assertSameAsQemu(plant("l1eof", f -> QedFiles.putU64(f, layout.l1EntryOffset(1), Files.size(f))), 2);
        assertSameAsQemu(plant("l1one", f -> QedFiles.putU64(f, layout.l1EntryOffset(1), 1)), 2);
        // the table's first cluster is in the file, its last one is not
        assertSameAsQemu(plant("l1tail", f -> QedFiles.putU64(f, layout.l1EntryOffset(1), Files.size(f) - c)), 2);
    }

    @Test
    void l2TablesOverlapping() throws Exception {
        assertSameAsQemu(plant("l2same", f -> QedFiles.putU64(f, layout.l1EntryOffset(1), l2a)), 2);
        assertSameAsQemu(plant("l2half", f -> QedFiles.putU64(f, layout.l1EntryOffset(1), l2a + c)), 2);
        assertSameAsQemu(plant("l2onL1", f -> QedFiles.putU64(f, layout.l1EntryOffset(1), layout.l1Offset())), 2);
    }

    @Test
    void leakedClusters() throws Exception {
        assertSameAsQemu(plant("leak2", f -> extend(f, Files.size(f) + 2 * c)), 3);
        // qemu sees the length rounded up to 512 bytes, then down to a cluster
        assertSameAsQemu(plant("tail100", f -> extend(f, Files.size(f) + c - 100)), 3);
        assertSameAsQemu(plant("tail600", f -> extend(f, Files.size(f) + c - 600)), 0);
        // an entry dropped: its cluster leaks
        assertSameAsQemu(plant("dropped", f -> QedFiles.putU64(f, l2b, 0)), 3);
    }

    @Test
    void corruptionsAndLeaksTogetherWithNeedCheck() throws Exception {
        assertSameAsQemu(plant("mixed", f -> {
            QedFiles.putU64(f, l2a + 8, 0x7ff000);
            QedFiles.putU64(f, layout.l1EntryOffset(3), 3);
            QedFiles.putU64(f, 16, 2);
            extend(f, Files.size(f) + 3 * c);
        }), 2);
        // need-check alone: a repair clears it, nothing else changes
        assertSameAsQemu(plant("nc", f -> QedFiles.putU64(f, 16, 2)), 0);
    }

    /** An entry inside the header clusters (header_size 2, which qemu never creates itself). */
    @Test
    void dataOffsetInsideTheHeader() throws Exception {
        Qemu.create(dir.resolve("b.raw"), "raw", "1M");
        Path f = dir.resolve("hdr.qed");
        Dm.run("create", "-q", "-f", "qed", "-o", "cluster_size=4096,table_size=2", "-b",
                "./".repeat(2016) + "b.raw", "-F", "raw", f, "1M").ok();
        Qemu.io(f, "qed", "write -P 1 0 8k");
        QedFiles.Layout l = QedFiles.layout(f);
        assertEquals(2, l.headerSize());
        long l2 = QedFiles.l2Of(f, 0);
        QedFiles.putU64(f, l2 + 8, 4096);
        assertSameAsQemu(f, 2);
    }

    /**
     * Where we deliberately differ: qemu 7.2 sizes its leak scan as
     * roundup(file, C) / (C - 1) clusters (qed_bytes_to_clusters divides by
     * C - 1), so once a file holds C - 1 clusters (16 MiB at 4 KiB) it reports
     * clusters past the end of the file as leaked. We count the real file.
     */
    @Test
    void qemuReportsPhantomLeaksInFilesOfCMinusOneClusters() throws Exception {
        Path f = dir.resolve("big.qed");
        Qemu.create(f, "qed", "64M", "cluster_size=4096", "table_size=2");
        Qemu.io(f, "qed", "write -P 3 0 20M");
        long clusters = Files.size(f) / 4096;
        long phantom = clusters * 4096 / 4095 - clusters;
        assertTrue(phantom >= 1);
        Qemu.Result q = Qemu.check(f, "qed");
        assertEquals(3, q.exitCode());
        assertEquals(phantom, q.json().get("leaks").asLong());
        Dm.Result d = Dm.run("check", "-f", "qed", "--output=json", f);
        assertEquals(0, d.exitCode(), d.err());
        assertEquals(q.json().get("allocated-clusters"), d.json().get("allocated-clusters"));
    }

    /** Through the API: counters as qemu fills them; a repair of nothing leaves the file alone. */
    @Test
    void reportCountersAndNoWriteWithoutRepair() throws Exception {
        Path f = plant("api", g -> QedFiles.putU64(g, l2b + 8, QedFiles.u64(g, l2a)));
        String before = QedFiles.digest(f);
        try (DiskImage img = Images.open(f, OpenOptions.forWriting().withFormat("qed"))) {
            CheckReport r = img.check(RepairMode.ALL);
            assertEquals(1, r.corruptions);
            assertEquals(0, r.corruptionsFixed);
            assertEquals(2048, r.totalClusters);
            assertEquals(4, r.allocatedClusters);
            assertEquals(1, r.fragmentedClusters);
            assertEquals(-1, r.imageEndOffset, "qemu reports no image end offset for QED");
            assertTrue(!r.repaired);
        }
        assertEquals(before, QedFiles.digest(f), "a double reference cannot be repaired: file untouched");
    }

    /**
     * Our check and qemu-img check agree on exit code and JSON; then on
     * copies, -r leaks and -r all leave byte-identical files and report the
     * same, and a later check agrees again.
     */
    private void assertSameAsQemu(Path f, int expectedExit) throws IOException {
        Qemu.Result q = Qemu.check(f, "qed");
        assertEquals(expectedExit, q.exitCode(), "qemu-img check of " + f + ": " + q.out() + q.err());
        QedReadTest.assertSameCheck(f);
        for (String mode : List.of("leaks", "all")) {
            Path theirs = dir.resolve(f.getFileName() + "." + mode + ".q");
            Path ours = dir.resolve(f.getFileName() + "." + mode + ".d");
            Files.copy(f, theirs, StandardCopyOption.REPLACE_EXISTING);
            Files.copy(f, ours, StandardCopyOption.REPLACE_EXISTING);
            Qemu.Result qr = Qemu.img("check", "-f", "qed", "-r", mode, "--output=json", theirs);
            Dm.Result dr = Dm.run("check", "-f", "qed", "-r", mode, "--output=json", ours);
            assertEquals(qr.exitCode(), dr.exitCode(), mode + ": " + dr.err());
            assertEquals(((ObjectNode) qr.json()).without("filename"), ((ObjectNode) dr.json()).without("filename"),
                    "-r " + mode);
            assertEquals(QedFiles.digest(theirs), QedFiles.digest(ours), "-r " + mode + " changes what qemu changes");
            QedReadTest.assertSameCheck(ours);
        }
    }

    private static void extend(Path f, long length) throws IOException {
        try (FileChannel ch = FileChannel.open(f, StandardOpenOption.WRITE)) {
            ch.write(ByteBuffer.allocate(1), length - 1);
        }
    }
}
