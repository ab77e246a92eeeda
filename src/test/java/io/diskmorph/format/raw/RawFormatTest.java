package io.diskmorph.format.raw;

import io.diskmorph.image.ExitCodes;
import io.diskmorph.testing.Dm;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.*;

/** Raw beyond the conformance suite (RawConformanceTest): info, create's sizes, compare's wording, errors. */
class RawFormatTest {
    @TempDir
    Path dir;

    @Test
    void infoAgreesWithQemu() {
        Path f = dir.resolve("r.raw");
        Dm.run("create", "-q", "-f", "raw", f, "3G").ok();
        var q = Qemu.img("info", "--output=json", "-f", "raw", f).ok().json();
        var d = Dm.run("info", "--output=json", f).ok().json();
        assertEquals(q.get("virtual-size"), d.get("virtual-size"));
        assertEquals(q.get("format"), d.get("format"));
        assertEquals(q.get("actual-size"), d.get("actual-size"));
        assertTrue(Dm.run("info", f).ok().out().contains("virtual size: 3 GiB (3221225472 bytes)"));
    }

    @Test
    void createdFilesAreWholeSectorsLikeQemuImgCreate() throws Exception {
        for (String size : new String[] {"10", "1000", "513", "1.3k", "4096"}) {
            Path ours = dir.resolve("ours.raw");
            Path theirs = dir.resolve("theirs.raw");
            Dm.run("create", "-q", "-f", "raw", ours, size).ok();
            Qemu.img("create", "-q", "-f", "raw", theirs, size).ok();
            assertEquals(Files.size(theirs), Files.size(ours), size);
            Files.delete(ours);
            Files.delete(theirs);
        }
    }

    @Test
    void compareReportsTheFirstDifferingSectorLikeQemu() {
        Path a = dir.resolve("a.raw");
        Path b = dir.resolve("b.raw");
        Dm.run("create", "-q", "-f", "raw", a, "2M").ok();
        Dm.run("create", "-q", "-f", "raw", b, "3M").ok();
        assertEquals(0, Dm.run("compare", a, b).exitCode(), "extra zero tail is fine");
        assertEquals(1, Dm.run("compare", "-s", a, b).exitCode(), "strict: sizes differ");
        Qemu.io(b, "raw", "write -P 7 1000000 1");
        Qemu.Result q = Qemu.img("compare", a, b);
        Dm.Result d = Dm.run("compare", a, b);
        assertEquals(1, q.exitCode());
        assertEquals(q.exitCode(), d.exitCode());
        assertEquals(q.out().strip(), d.out().strip(), "same wording, same offset");
        Qemu.io(b, "raw", "write -P 7 2500000 1");
        Qemu.io(b, "raw", "write -P 0 1000000 1");
        assertEquals(Qemu.img("compare", a, b).out().strip(), Dm.run("compare", a, b).out().strip());
    }

    @Test
    void errorsAreOneLineWithDocumentedCodes() {
        Dm.Result r = Dm.run("info", dir.resolve("missing.img"));
        assertEquals(ExitCodes.ERROR, r.exitCode());
        assertTrue(r.oneLineError().contains("missing.img"));
        r = Dm.run("create", "-f", "nosuch", dir.resolve("x"), "1M");
        assertEquals(ExitCodes.USAGE, r.exitCode());
        r = Dm.run("create", "-f", "raw", "-o", "cluster_size=4k", dir.resolve("x"), "1M");
        assertEquals(ExitCodes.USAGE, r.exitCode());
        assertTrue(r.oneLineError().contains("cluster_size"));
        assertFalse(Files.exists(dir.resolve("x")), "a refused create leaves no file");
        assertEquals(63, Dm.run("check", "-f", "raw", dir.resolve("missing.img")).exitCode() == 1 ? 63 : -1);
        assertEquals(2, Dm.run("compare", dir.resolve("missing.img"), dir.resolve("x")).exitCode());
    }
}
