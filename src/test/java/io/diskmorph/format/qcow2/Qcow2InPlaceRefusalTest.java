package io.diskmorph.format.qcow2;

import io.diskmorph.image.ExitCodes;
import io.diskmorph.testing.Dm;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Like resize2fs, which will not touch a file system e2fsck has not passed,
 * in-place conversion refuses a source on which check finds corruption, and
 * a source whose backing chain cannot be opened: one line naming the problem
 * and the way out, exit 65, the file byte-identical. Leaks are not
 * corruption and do not block. Each damage is judged by qemu-img check too.
 */
class Qcow2InPlaceRefusalTest {
    @TempDir
    Path dir;

    private Path image(String name) {
        Path f = dir.resolve(name);
        Qemu.create(f, "qcow2", "16M");
        Qemu.io(f, "qcow2", "write -P 0x11 0 1M", "write -P 0x22 8M 256k");
        return f;
    }

    @ParameterizedTest
    @ValueSource(strings = {"L2 table maps itself as data", "refcount below the references"})
    void corruptSourcesAreRefused(String damage) throws Exception {
        Path f = image("c.qcow2");
        if (damage.startsWith("L2")) {
            long entry = Qcow2Files.l2Entry(f, 64 << 10);
            long l2Table = entry & ~0xffffL; // the table holding the entry (64 KiB clusters)
            Qcow2Files.putU64(f, entry, l2Table | 1L << 63);
        } else {
            Qcow2Files.setRefcount(f, Qcow2Files.dataCluster(f, 8 << 20), 0);
        }
        assertEquals(2, Qemu.check(f, "qcow2").exitCode(), "qemu-img calls it corrupt too");
        byte[] before = Files.readAllBytes(f);
        for (String target : new String[]{"qed", "qcow2"}) {
            Dm.Result r = Dm.run("convert", "--in-place", "-O", target, "-o", target.equals("qcow2")
                    ? "cluster_size=32k" : "table_size=4", f);
            assertEquals(ExitCodes.CORRUPT, r.exitCode(), damage + ": " + r.err());
            assertTrue(r.oneLineError().contains("corruption") && r.err().contains("check -r all"), r.err());
            assertArrayEquals(before, Files.readAllBytes(f), "a refusal changes nothing");
            assertFalse(Files.exists(dir.resolve("c.qcow2.dmjournal")));
        }
        // repaired as qemu would, it converts
        Dm.run("check", "-r", "all", f);
        assertEquals(0, Qemu.check(f, "qcow2").exitCode());
        Dm.run("convert", "--in-place", "-O", "qed", f).ok();
        assertEquals(0, Qemu.check(f, "qed").exitCode());
    }

    @Test
    void leaksAreNotCorruption() throws Exception {
        Path f = image("l.qcow2");
        Path reference = dir.resolve("l.raw");
        Qemu.io(f, "qcow2", "write -P 0x33 12M 64k");
        long leaked = Qcow2Files.dataCluster(f, 12 << 20);
        Qcow2Files.putU64(f, Qcow2Files.l2Entry(f, 12 << 20), 0); // unreferenced, refcount still 1: a leak
        Qemu.toRaw(f, "qcow2", reference);
        assertEquals(3, Qemu.check(f, "qcow2").exitCode(), "leaks only");
        assertTrue(leaked > 0);
        Dm.run("convert", "--in-place", "-O", "qed", f).ok();
        assertEquals(0, Qemu.check(f, "qed").exitCode());
        assertEquals(0, Qemu.img("compare", "-f", "qed", "-F", "raw", f, reference).exitCode());
    }

    @ParameterizedTest
    @ValueSource(strings = {"missing", "loop"})
    void aBackingChainThatCannotBeOpenedIsRefused(String how) throws Exception {
        Path top = dir.resolve("top.qcow2");
        Path base = dir.resolve("base.qcow2");
        Qemu.create(base, "qcow2", "16M");
        Qemu.img("create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", top, "16M").ok();
        Qemu.io(top, "qcow2", "write -P 0x44 0 64k");
        if (how.equals("missing")) {
            Files.delete(base);
        } else { // base names top: a loop
            Qemu.img("rebase", "-u", "-b", "top.qcow2", "-F", "qcow2", base).ok();
        }
        byte[] before = Files.readAllBytes(top);
        Dm.Result r = Dm.run("convert", "--in-place", "-O", "qed", top);
        assertEquals(ExitCodes.CORRUPT, r.exitCode(), r.err());
        assertTrue(r.oneLineError().contains("backing file cannot be opened") && r.err().contains("--no-backing"),
                r.err());
        assertArrayEquals(before, Files.readAllBytes(top));
        // the user says how to treat it: keep the name, read nothing of it
        Dm.run("convert", "--in-place", "--no-backing", "-O", "qed", top).ok();
        assertEquals("base.qcow2", Qemu.img("info", "--output=json", "-U", "--force-share", top).json()
                .get("backing-filename").asText());
    }
}
