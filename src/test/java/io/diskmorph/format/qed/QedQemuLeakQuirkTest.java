package io.diskmorph.format.qed;

import io.diskmorph.testing.Dm;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * qemu 7.2's QED check reports leaks on sound files once they reach
 * C * (C - 1) bytes (16 MiB with 4 KiB clusters, 4 GiB with 64 KiB): its
 * used-cluster bitmap indexes cluster k at k * C / (C - 1), since
 * qed_bytes_to_clusters divides by the cluster size minus one, so one bit in
 * every C - 1 stays clear and counts as a leak. Pinned here on a file
 * qemu-img makes and writes itself, and on one diskmorph converts: qemu's
 * count is exactly floor(floor(F / C) / (C - 1)), diskmorph's check stays
 * exact (clean), and the plan warns about it.
 */
class QedQemuLeakQuirkTest {
    @TempDir
    Path dir;

    @Test
    void qemuCountsPhantomLeaksOnItsOwnImages() throws Exception {
        Path img = dir.resolve("q.qed");
        Qemu.create(img, "qed", "1G", "cluster_size=4096"); // table_size 4: qemu-io is sound there
        Qemu.io(img, "qed", "write -P 0x21 0 32M");
        long expected = QedChecker.qemuPhantomLeaks(4096, Files.size(img));
        assertTrue(expected >= 2, "the file is large enough to show the quirk: " + Files.size(img));
        assertEquals(expected, qemuLeaks(img));
        assertEquals(0, Dm.run("check", img).exitCode(), "diskmorph counts exactly");
    }

    @Test
    void aConvertedImageIsSoundAndThePlanSaysWhatQemuWillReport() throws Exception {
        Path img = dir.resolve("d.raw");
        Qemu.create(img, "raw", "48M");
        Qemu.io(img, "raw", "write -P 0x42 0 48M");
        Path reference = dir.resolve("ref.raw");
        Files.copy(img, reference);
        Dm.Result r = Dm.run("convert", "--in-place", "-O", "qed", "-o", "cluster_size=4096", img).ok();
        long expected = QedChecker.qemuPhantomLeaks(4096, Files.size(img));
        assertTrue(expected >= 2, "file " + Files.size(img));
        assertTrue(r.out().contains("qemu-img 7.2 check will report " + expected + " leaked clusters"), r.out());
        assertEquals(expected, qemuLeaks(img));
        assertEquals(0, Dm.run("check", img).exitCode());
        assertEquals(0, Qemu.img("compare", "-f", "qed", "-F", "raw", img, reference).exitCode());
        // below C * (C - 1) bytes qemu agrees that it is clean
        Path small = dir.resolve("s.raw");
        Qemu.create(small, "raw", "8M");
        Qemu.io(small, "raw", "write -P 0x43 0 8M");
        Dm.Result rs = Dm.run("convert", "--in-place", "-O", "qed", "-o", "cluster_size=4096", small).ok();
        assertTrue(!rs.out().contains("will report"), rs.out());
        assertEquals(0, Qemu.check(small, "qed").exitCode());
    }

    /** qemu-img check's leak count: 0 when clean; its exit code says leaks only (3) otherwise. */
    private static long qemuLeaks(Path img) {
        Qemu.Result r = Qemu.check(img, "qed");
        var json = r.json();
        long leaks = json.has("leaks") ? json.get("leaks").asLong() : 0;
        assertEquals(leaks == 0 ? 0 : 3, r.exitCode(), "leaks only, no corruption: " + r.out());
        assertTrue(!json.has("corruptions") || json.get("corruptions").asLong() == 0, r.out());
        return leaks;
    }
}
