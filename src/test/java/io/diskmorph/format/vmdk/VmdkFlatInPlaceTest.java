package io.diskmorph.format.vmdk;

import io.diskmorph.image.ExitCodes;
import io.diskmorph.testing.Dm;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.stream.Collectors;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code convert --in-place -O raw} of a VMDK descriptor with one flat
 * extent (qemu-img's monolithicFlat and one-extent twoGbMaxExtentFlat,
 * ESXi's vmfs pair, thin and thick): the extent takes the descriptor's path
 * and is the raw image (qemu-img compare against qemu-img's own copy to raw,
 * info says raw), no other file remains, a dry run writes nothing, and with
 * --keep-rollback, {@code rollback} restores both files byte for byte
 * (qemu-img check and vmdkinfo read the pair again). What cannot be switched
 * by a rename is refused in one line (exit 66), every file unchanged.
 */
class VmdkFlatInPlaceTest {
    @TempDir
    Path dir;

    private Path pair(String kind) throws Exception {
        Path img = dir.resolve("d.vmdk");
        switch (kind) {
            case "vmfs-thin", "vmfs-thick" -> {
                Path raw = VmdkFiles.sampleRaw(dir, "esxi.raw", "6M", "write -P 9 64k 1M", "write -P 7 5M 512");
                img = VmdkFiles.esxiPair(dir, "d", raw, 0x5f3a9c21L);
                Files.delete(raw);
                if (kind.equals("vmfs-thick")) { // ESXi's thick disks: no thinProvisioned line, every block written
                    Files.writeString(img, Files.readString(img).replace("ddb.thinProvisioned = \"1\"\n", ""));
                    Qemu.io(img, "vmdk", "write -P 3 2M 3M");
                }
            }
            default -> {
                Qemu.create(img, "vmdk", "8M", "subformat=" + kind);
                Qemu.io(img, "vmdk", "write -P 0x11 0 64k", "write -P 0x22 1M 1M", "write -z 1536k 64k",
                        "write -P 0x33 8388096 512");
            }
        }
        return img;
    }

    @ParameterizedTest(name = "{0}, keep rollback {1}")
    @CsvSource({"monolithicFlat, false", "monolithicFlat, true", "twoGbMaxExtentFlat, true", "vmfs-thin, false",
            "vmfs-thick, true"})
    void theFlatExtentBecomesTheRawImage(String kind, boolean keepRollback) throws Exception {
        Path img = pair(kind);
        Path copy = Files.createDirectory(dir.resolve("ref")).resolve("copy.raw");
        Qemu.img("convert", "-f", "vmdk", "-O", "raw", img, copy).ok();
        Map<String, byte[]> before = everyFile();
        assertEquals(2, before.size(), "descriptor and one extent: " + before.keySet());
        String extent = before.keySet().stream().filter(n -> !n.equals("d.vmdk")).findFirst().orElseThrow();

        Dm.Result dry = Dm.run("convert", "--in-place", "--dry-run", "--output=json", "-O", "raw", img).ok();
        assertEquals(Files.size(copy), dry.json().get("final-length").asLong());
        assertEquals(0, dry.json().get("moved-bytes").asLong());
        assertSame(before, everyFile(), "a dry run writes nothing");

        if (keepRollback) {
            Dm.run("convert", "--in-place", "--keep-rollback", "-O", "raw", img).ok();
        } else {
            Dm.run("convert", "--in-place", "-O", "raw", img).ok();
        }
        Set<String> expected = keepRollback ? Set.of("d.vmdk", "d.vmdk.dmrollback") : Set.of("d.vmdk");
        assertEquals(expected, everyFile().keySet(), "the extent took the descriptor's path, nothing else left");
        assertArrayEquals(before.get(extent), Files.readAllBytes(img), "the extent's bytes, unchanged");
        assertEquals(0, Qemu.img("compare", "-f", "raw", "-F", "raw", img, copy).exitCode());
        assertEquals("raw", Qemu.img("info", "--output=json", img).ok().json().get("format").asText());
        assertEquals(Files.size(copy), Qemu.img("info", "--output=json", img).ok().json().get("virtual-size")
                .asLong());
        assertEquals("no interrupted conversion; nothing to do", Dm.run("recover", img).ok().out().strip()
                .replace(img + ": ", ""));

        if (keepRollback) {
            Dm.run("rollback", img).ok();
            assertSame(before, everyFile(), "rollback restores both files byte for byte");
            Qemu.check(img, "vmdk").ok();
            assertEquals(0, Qemu.img("compare", "-f", "vmdk", "-F", "raw", img, copy).exitCode());
            VmdkFiles.assertVmdkinfoAgrees(img);
        } else {
            Dm.Result r = Dm.run("rollback", img);
            assertTrue(r.exitCode() != 0 && r.oneLineError().contains("no rollback record"), r.err());
        }
    }

    /**
     * Raw to a VMDK flat pair in place: the path becomes the descriptor, the
     * raw file (every byte as it was) takes qemu's extent name beside it
     * (NAME-flat.EXT; NAME-f001.EXT for a one-extent twoGbMaxExtentFlat);
     * qemu-img check and compare and vmdkinfo read the pair. Then back to
     * raw in place (the rename the other way) gives the original bytes,
     * or, when kept, rollback does.
     */
    @ParameterizedTest(name = "{0} {1}")
    @CsvSource({"monolithicFlat, disk.img, disk-flat.img, false", "monolithicFlat, d.vmdk, d-flat.vmdk, true",
            "twoGbMaxExtentFlat, d.vmdk, d-f001.vmdk, true", "monolithicFlat, plain, plain-flat, false"})
    void rawBecomesAFlatPair(String subformat, String name, String extent, boolean keepRollback) throws Exception {
        Path img = VmdkFiles.sampleRaw(dir, name, "6M", "write -P 0x21 0 64k", "write -P 0x22 3M 1M",
                "write -P 0x23 6291456 0");
        byte[] original = Files.readAllBytes(img);
        Map<String, byte[]> before = everyFile();
        Dm.Result dry = Dm.run("convert", "--in-place", "--dry-run", "--output=json", "-O", "vmdk", "-o",
                "subformat=" + subformat, img).ok();
        assertEquals(0, dry.json().get("moved-bytes").asLong());
        assertSame(before, everyFile(), "a dry run writes nothing");

        if (keepRollback) {
            Dm.run("convert", "--in-place", "-O", "vmdk", "-o", "subformat=" + subformat, "--keep-rollback", img).ok();
        } else {
            Dm.run("convert", "--in-place", "-O", "vmdk", "-o", "subformat=" + subformat, img).ok();
        }
        Set<String> expected = keepRollback ? Set.of(name, extent, name + ".dmrollback") : Set.of(name, extent);
        assertEquals(expected, everyFile().keySet());
        assertArrayEquals(original, Files.readAllBytes(dir.resolve(extent)), "the raw file's bytes, renamed");
        assertTrue(Files.readString(img).contains("createType=\"" + subformat + "\"")
                && Files.readString(img).contains("RW 12288 FLAT \"" + extent + "\" 0"), Files.readString(img));
        Qemu.check(img, "vmdk").ok();
        Path ref = Files.createDirectory(dir.resolve("ref")).resolve("ref.raw");
        Files.write(ref, original);
        assertEquals(0, Qemu.img("compare", "-f", "vmdk", "-F", "raw", img, ref).exitCode());
        VmdkFiles.assertVmdkinfoAgrees(img);

        if (keepRollback) {
            Dm.run("rollback", img).ok();
        } else {
            Dm.run("convert", "--in-place", "-O", "raw", img).ok();
        }
        Files.delete(ref);
        Files.delete(ref.getParent());
        assertSame(before, everyFile(), "the raw file back under its name, nothing else");
    }

    /** Raw to VMDK flat is refused in one line when the extent's name is taken or the size is not whole sectors. */
    @ParameterizedTest(name = "{0}")
    @CsvSource({"taken, exists", "sectors, 512-byte sectors"})
    void rawRefusals(String what, String says) throws Exception {
        Path img = VmdkFiles.sampleRaw(dir, "d.vmdk", what.equals("sectors") ? "1000000" : "1M", "write -P 1 0 4k");
        if (what.equals("taken")) {
            Files.writeString(dir.resolve("d-flat.vmdk"), "someone else's file");
        } else { // qemu-img create rounds up to whole sectors: cut it
            try (var ch = java.nio.channels.FileChannel.open(img, java.nio.file.StandardOpenOption.WRITE)) {
                ch.truncate(1000000);
            }
        }
        Map<String, byte[]> before = everyFile();
        for (Object[] cmd : new Object[][]{{"convert", "--in-place", "-O", "vmdk", "-o", "subformat=monolithicFlat",
                img}, {"convert", "--in-place", "--dry-run", "-O", "vmdk", "-o", "subformat=monolithicFlat", img}}) {
            Dm.Result r = Dm.run(cmd);
            assertEquals(ExitCodes.UNSUPPORTED, r.exitCode(), r.err());
            assertTrue(r.oneLineError().contains(says), r.err());
            assertSame(before, everyFile(), "nothing written");
        }
    }

    /**
     * A flat pair to qcow2 / QED in place: the extent is converted like a
     * raw file, then takes the descriptor's path; nothing else remains,
     * qemu-img check is clean and compare equal to qemu-img's copy. With
     * --keep-rollback the extent's own record stays beside the image's, and
     * rollback gives both files back byte for byte.
     */
    @ParameterizedTest(name = "{0} -> {1}, keep rollback {2}")
    @CsvSource({"monolithicFlat, qcow2, false", "monolithicFlat, qed, true", "vmfs-thin, qcow2, true",
            "vmfs-thick, qed, false", "twoGbMaxExtentFlat, qed, false", "twoGbMaxExtentFlat, qcow2, true"})
    void theFlatExtentConvertsLikeARawFile(String kind, String target, boolean keepRollback) throws Exception {
        Path img = pair(kind);
        Path copy = Files.createDirectory(dir.resolve("ref")).resolve("copy.raw");
        Qemu.img("convert", "-f", "vmdk", "-O", "raw", img, copy).ok();
        Map<String, byte[]> before = everyFile();
        Dm.Result dry = Dm.run("convert", "--in-place", "--dry-run", "--output=json", "-O", target, img).ok();
        assertEquals("vmdk", dry.json().get("source-format").asText());
        assertSame(before, everyFile(), "a dry run writes nothing");
        String extent = before.keySet().stream().filter(n -> !n.equals("d.vmdk")).findFirst().orElseThrow();

        if (keepRollback) {
            Dm.run("convert", "--in-place", "--keep-rollback", "-O", target, img).ok();
            assertEquals(Set.of("d.vmdk", "d.vmdk.dmrollback", extent + ".dmrollback"), everyFile().keySet(),
                    "the converted extent at the descriptor's path and the two records");
        } else {
            Dm.run("convert", "--in-place", "-O", target, img).ok();
            assertEquals(Set.of("d.vmdk"), everyFile().keySet(), "the converted extent at the descriptor's path only");
        }
        assertEquals(target, Qemu.img("info", "--output=json", img).ok().json().get("format").asText());
        Qemu.check(img, target).ok();
        assertEquals(0, Qemu.img("compare", "-f", target, "-F", "raw", img, copy).exitCode());
        assertEquals("no interrupted conversion; nothing to do", Dm.run("recover", img).ok().out().strip()
                .replace(img + ": ", ""));
        if (keepRollback) {
            Dm.run("rollback", img).ok();
            assertSame(before, everyFile(), "rollback restores both files byte for byte");
            Qemu.check(img, "vmdk").ok();
            VmdkFiles.assertVmdkinfoAgrees(img);
        }
    }

    /** Names a rename would not change as the user thinks: a descriptor given by a link, a raw file with two names. */
    @Test
    void linksAreRefused() throws Exception {
        Path img = pair("monolithicFlat");
        Path link = dir.resolve("link.vmdk");
        Files.createSymbolicLink(link, img.getFileName());
        Map<String, byte[]> before = everyFile();
        Dm.Result r = Dm.run("convert", "--in-place", "-O", "raw", link);
        assertEquals(ExitCodes.UNSUPPORTED, r.exitCode(), r.err());
        assertTrue(r.oneLineError().contains("is a symbolic link"), r.err());
        assertSame(before, everyFile(), "nothing written");
        Files.delete(link);

        Path raw = VmdkFiles.sampleRaw(dir, "r.img", "1M", "write -P 3 0 4k");
        Files.createLink(dir.resolve("r2.img"), raw);
        before = everyFile();
        r = Dm.run("convert", "--in-place", "-O", "vmdk", "-o", "subformat=monolithicFlat", raw);
        assertEquals(ExitCodes.UNSUPPORTED, r.exitCode(), r.err());
        assertTrue(r.oneLineError().contains("2 hard links"), r.err());
        assertSame(before, everyFile(), "nothing written");
    }

    /** A rollback record refuses when the raw image was written since (the write would be lost). */
    @Test
    void rollbackRefusesAfterAWrite() throws Exception {
        Path img = pair("monolithicFlat");
        Dm.run("convert", "--in-place", "--keep-rollback", "-O", "raw", img).ok();
        Qemu.io(img, "raw", "write -P 0x44 0 4k");
        Map<String, byte[]> after = everyFile();
        Dm.Result r = Dm.run("rollback", img);
        assertTrue(r.exitCode() != 0 && r.oneLineError().contains("written or replaced after the conversion"),
                r.err());
        assertSame(after, everyFile(), "nothing changed");
    }

    /** What a rename cannot do is refused in one line, exit 66, every file as it was, none added. */
    @ParameterizedTest(name = "{0}")
    @CsvSource({"offset, would have to move", "several, 2 extents", "subdirectory, outside the descriptor's directory",
            "hardlink, 2 hard links", "short, shorter than the disk", "long, longer than the disk",
            "symlink, is a symbolic link", "snapshot, snapshot"})
    void refusals(String what, String says) throws Exception {
        Path img = dir.resolve("d.vmdk");
        Path raw = VmdkFiles.sampleRaw(dir, "data.raw", "4M", "write -P 5 0 1M");
        String line = "RW 8192 FLAT \"d-flat.vmdk\" 0";
        String extra = null;
        long parent = 0xffffffffL;
        switch (what) {
            case "offset" -> {
                line = "RW 8192 FLAT \"d-flat.vmdk\" 8";
                Files.write(raw, new byte[4096], java.nio.file.StandardOpenOption.APPEND);
            }
            case "several" -> extra = "RW 8192 FLAT \"d-f002.vmdk\" 0";
            case "subdirectory" -> line = "RW 8192 FLAT \"sub/d-flat.vmdk\" 0";
            case "snapshot" -> parent = 0x1234L;
            default -> {
            }
        }
        if (what.equals("subdirectory")) {
            Files.createDirectory(dir.resolve("sub"));
            Files.move(raw, dir.resolve("sub/d-flat.vmdk"));
        } else if (what.equals("symlink")) {
            Files.move(raw, dir.resolve("elsewhere.raw"));
            Files.createSymbolicLink(dir.resolve("d-flat.vmdk"), dir.resolve("elsewhere.raw"));
        } else {
            Files.move(raw, dir.resolve("d-flat.vmdk"));
        }
        if (what.equals("several")) {
            Files.copy(dir.resolve("d-flat.vmdk"), dir.resolve("d-f002.vmdk"));
        }
        if (what.equals("hardlink")) {
            Files.createLink(dir.resolve("other-name.raw"), dir.resolve("d-flat.vmdk"));
        }
        if (what.equals("short")) {
            try (var ch = java.nio.channels.FileChannel.open(dir.resolve("d-flat.vmdk"),
                    java.nio.file.StandardOpenOption.WRITE)) {
                ch.truncate(3 << 20);
            }
        }
        if (what.equals("long")) {
            Files.write(dir.resolve("d-flat.vmdk"), new byte[512], java.nio.file.StandardOpenOption.APPEND);
        }
        if (what.equals("snapshot")) {
            Files.copy(dir.resolve("d-flat.vmdk"), dir.resolve("parent-flat.vmdk"));
            Files.writeString(dir.resolve("parent.vmdk"), VmdkFiles.descriptor(0x1234L, 0xffffffffL,
                    "monolithicFlat", null, "RW 8192 FLAT \"parent-flat.vmdk\" 0"));
        }
        Files.writeString(img, extra == null
                ? VmdkFiles.descriptor(0x77L, parent, "monolithicFlat", what.equals("snapshot") ? "parent.vmdk"
                : null, line)
                : VmdkFiles.descriptor(0x77L, parent, "twoGbMaxExtentFlat", null, line, extra));
        Map<String, byte[]> before = everyFileDeep();
        for (Object[] cmd : new Object[][]{{"convert", "--in-place", "-O", "raw", img},
                {"convert", "--in-place", "--dry-run", "-O", "raw", img},
                {"convert", "--in-place", "--keep-rollback", "-f", "vmdk", "-O", "raw", img}}) {
            Dm.Result r = Dm.run(cmd);
            String msg = r.oneLineError();
            if (what.equals("several") && cmd[2].equals("--keep-rollback")) { // not a pair: the roll-forward's usage check
                assertEquals(ExitCodes.USAGE, r.exitCode(), msg);
            } else {
                assertEquals(ExitCodes.UNSUPPORTED, r.exitCode(), r.err());
                assertTrue(msg.contains(says), msg);
            }
            assertSame(before, everyFileDeep(), "every file as it was, none added: " + msg);
        }
    }

    /** A journal left by a crash before the rename: the pair is intact, recover removes the journal. */
    @Test
    void openRefusesWhileAJournalIsPendingAndRecoverClearsIt() throws Exception {
        Path img = pair("monolithicFlat");
        Dm.run("convert", "--in-place", "--keep-rollback", "-O", "raw", img).ok();
        Files.move(dir.resolve("d.vmdk.dmrollback"), dir.resolve("d.vmdk.dmjournal"));
        Dm.Result info = Dm.run("info", img);
        assertEquals(ExitCodes.INTERRUPTED_CONVERSION, info.exitCode(), info.err());
        assertTrue(Dm.run("recover", img).ok().out().contains("had committed; finished it"));
        assertEquals(Set.of("d.vmdk", "d.vmdk.dmrollback"), everyFile().keySet());
        assertFalse(Files.exists(dir.resolve("d.vmdk.dmjournal")));
    }

    private Map<String, byte[]> everyFile() throws Exception {
        Map<String, byte[]> m = new TreeMap<>();
        try (var files = Files.list(dir)) {
            for (Path p : files.filter(Files::isRegularFile).toList()) {
                m.put(p.getFileName().toString(), Files.readAllBytes(p));
            }
        }
        return m;
    }

    private Map<String, byte[]> everyFileDeep() throws Exception {
        Map<String, byte[]> m = new TreeMap<>();
        try (var files = Files.walk(dir)) {
            for (Path p : files.filter(p -> !Files.isDirectory(p)).toList()) {
                m.put(dir.relativize(p) + (Files.isSymbolicLink(p) ? " -> " + Files.readSymbolicLink(p) : ""),
                        Files.isSymbolicLink(p) ? new byte[0] : Files.readAllBytes(p));
            }
        }
        return m;
    }

    private static void assertSame(Map<String, byte[]> a, Map<String, byte[]> b, String message) {
        assertEquals(a.keySet(), b.keySet(), message);
        assertEquals(a.entrySet().stream().collect(Collectors.toMap(Map.Entry::getKey,
                        e -> java.util.Arrays.hashCode(e.getValue()))),
                b.entrySet().stream().collect(Collectors.toMap(Map.Entry::getKey,
                        e -> java.util.Arrays.hashCode(e.getValue()))), message);
    }
}
