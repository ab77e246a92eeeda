package io.diskmorph.format.vmdk;

import com.fasterxml.jackson.databind.JsonNode;
import io.diskmorph.testing.Dm;
import io.diskmorph.testing.Oracles;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * VMDK as the target of an in-place conversion (monolithicSparse, qemu's
 * 64 KiB grains), judged by qemu-img and vmdkinfo: raw, qcow2 and QED
 * sources keep every 64 KiB-aligned data cluster where it is (only the
 * first grain, where the sparse header goes, moves); the result checks
 * clean, compares equal to the source, maps like qemu maps it; rollback
 * gives the source back byte for byte; what VMDK cannot be in place is
 * refused with the file unchanged.
 */
class VmdkTargetTest {
    @TempDir
    Path dir;

    @ParameterizedTest
    @CsvSource(delimiter = '|', value = {
            "raw||",
            "qcow2||",
            "qed||zeroed_grain=on",
            "qcow2|cluster_size=4k|adapter_type=lsilogic,hwversion=6"})
    void convertsToVmdkInPlace(String from, String createOptions, String targetOptions) throws Exception {
        Path img = dir.resolve("disk." + from);
        if (createOptions == null) {
            Qemu.create(img, from, "40M");
        } else {
            Qemu.create(img, from, "40M", createOptions);
        }
        Qemu.io(img, from, "write -P 0x11 0 100k", "write -P 0x22 1M 64k", "write -z 2M 64k",
                "write -P 0x33 33M 3000", "write -P 0x44 41938944 4k");
        Path original = dir.resolve("original." + from);
        Files.copy(img, original);
        List<Qemu.MapLine> before = Qemu.map(img, from);
        List<Object> args = new java.util.ArrayList<>(List.of("convert", "--in-place", "--keep-rollback",
                "--output=json", "-f", from, "-O", "vmdk"));
        if (targetOptions != null) {
            args.addAll(List.of("-o", targetOptions));
        }
        args.add(img);
        JsonNode plan = Dm.run(args.toArray()).ok().json();
        Oracles.assertCheckClean(img, "vmdk");
        assertEquals(0, Qemu.img("compare", "-f", "vmdk", "-F", from, img, original).exitCode());
        assertEquals("vmdk", Qemu.img("info", "--output=json", img).ok().json().get("format").asText());
        List<Qemu.MapLine> after = Qemu.map(img, "vmdk");
        Oracles.assertKeptInPlace(before, after, plan.get("moved-bytes").asLong());
        assertEquals(after, Dm.map(img, "vmdk"));
        assertEquals(0, Dm.run("check", img).exitCode());
        Qemu.Result v = Qemu.run("vmdkinfo", img.toString());
        assertEquals(0, v.exitCode(), v.err());
        assertTrue(v.out().contains("Monolithic sparse") && v.out().contains("(41943040 bytes)"), v.out());
        if (targetOptions != null && targetOptions.contains("zeroed_grain")) {
            assertEquals(2, VmdkFiles.u32(img, 4), "version 2: zeroed grains");
        }
        Dm.run("rollback", img).ok();
        assertArrayEquals(Files.readAllBytes(original), Files.readAllBytes(img), "rollback gives the source back");
    }

    /**
     * VMDK to VMDK: the options the image has change nothing (nothing
     * written); streamOptimized to monolithicSparse decompresses every grain
     * into the same file (an OVA's disk made writable), checks clean,
     * compares equal, and rolls back byte for byte.
     */
    @Test
    void vmdkToVmdkInPlace() throws Exception {
        Path raw = dir.resolve("d.raw");
        Qemu.create(raw, "raw", "8M");
        Qemu.io(raw, "raw", "write -P 0x51 0 1M", "write -P 0x52 5M 70k");
        Path s = dir.resolve("s.vmdk");
        Qemu.img("convert", "-O", "vmdk", "-o", "subformat=streamOptimized", raw, s).ok();
        byte[] stream = Files.readAllBytes(s);
        JsonNode same = Dm.run("convert", "--in-place", "--output=json", "-O", "vmdk", "-o",
                "subformat=streamOptimized", s).ok().json();
        assertTrue(same.get("nothing-to-change").asBoolean(), same.toString());
        assertArrayEquals(stream, Files.readAllBytes(s));
        Dm.run("convert", "--in-place", "--keep-rollback", "-O", "vmdk", "-o", "subformat=monolithicSparse", s).ok();
        Oracles.assertCheckClean(s, "vmdk");
        assertEquals(0, Qemu.img("compare", "-f", "vmdk", "-F", "raw", s, raw).exitCode());
        assertEquals("monolithicSparse", Qemu.img("info", "--output=json", s).ok().json().get("format-specific")
                .get("data").get("create-type").asText());
        Dm.run("rollback", s).ok();
        assertArrayEquals(stream, Files.readAllBytes(s), "rollback gives the stream back");
    }

    /** What a VMDK cannot be in place: another subformat (but monolithicFlat from raw), a non-VMDK parent. One line, nothing written. */
    @Test
    void refusesWhatVmdkCannotBeInPlace() throws Exception {
        Path raw = dir.resolve("d.raw");
        Qemu.create(raw, "raw", "4M");
        Qemu.io(raw, "raw", "write -P 1 0 1M");
        Path top = dir.resolve("top.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", "-b", "d.raw", "-F", "raw", top).ok();
        Path q = dir.resolve("q.qcow2"); // raw -> monolithicFlat is a rename (VmdkFlatInPlaceTest); qcow2 has to move
        Qemu.create(q, "qcow2", "4M");
        Qemu.io(q, "qcow2", "write -P 1 0 1M");
        record Case(Path image, String from, String options) {
        }
        for (Case c : List.of(new Case(raw, "raw", "subformat=streamOptimized"),
                new Case(q, "qcow2", "subformat=monolithicFlat"), new Case(top, "qcow2", ""))) {
            byte[] before = Files.readAllBytes(c.image());
            List<Object> args = new java.util.ArrayList<>(List.of("convert", "--in-place", "-f", c.from(), "-O",
                    "vmdk"));
            if (!c.options().isEmpty()) {
                args.addAll(List.of("-o", c.options()));
            }
            args.add(c.image());
            Dm.Result r = Dm.run(args.toArray());
            assertNotEquals(0, r.exitCode(), c.toString());
            r.oneLineError();
            assertArrayEquals(before, Files.readAllBytes(c.image()), c + ": " + r.err());
            try (var files = Files.list(dir)) {
                assertTrue(files.noneMatch(p -> p.toString().endsWith(".dmjournal")), c.toString());
            }
        }
    }
}
