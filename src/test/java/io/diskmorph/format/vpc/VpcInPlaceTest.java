package io.diskmorph.format.vpc;

import com.fasterxml.jackson.databind.JsonNode;
import io.diskmorph.image.ExitCodes;
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
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * VHD in place, judged by qemu-img and vhdiinfo: raw <-> fixed VHD by its
 * footer alone (nothing moves; rollback byte for byte), the sizes a footer
 * cannot describe refused in one line with the file untouched, and a
 * fixed or dynamic VHD to qcow2/QED keeping what lines up (a dynamic VHD's
 * blocks only at 512-byte clusters, which the default plan points at).
 */
class VpcInPlaceTest {
    @TempDir
    Path dir;

    private Path raw(String size) {
        Path p = dir.resolve("disk.img");
        Qemu.create(p, "raw", size);
        Qemu.io(p, "raw", "write -P 0x11 0 64k", "write -P 0x22 1M 8k", "write -P 0x33 3M 1M");
        return p;
    }

    @Test
    void rawBecomesAFixedVhdAndBack() throws Exception {
        Path img = raw("10M");
        byte[] original = Files.readAllBytes(img);
        Path ref = dir.resolve("ref.raw");
        Files.write(ref, original);
        JsonNode plan = Dm.run("convert", "--in-place", "--output=json", "-O", "vpc", "-o", "force_size=on",
                "--keep-rollback", img).ok().json();
        assertEquals(0, plan.get("moved-bytes").asLong());
        assertEquals(original.length + 512, Files.size(img));
        JsonNode info = Qemu.img("info", "-f", "vpc", "--output=json", img).ok().json();
        assertEquals(original.length, info.get("virtual-size").asLong());
        assertEquals(0, Qemu.img("compare", "-f", "vpc", "-F", "raw", img, ref).exitCode());
        String vhdi = Qemu.run("vhdiinfo", img.toString()).ok().out();
        assertTrue(vhdi.contains("Fixed") && vhdi.contains("(10485760 bytes)"), vhdi);
        assertEquals("raw", Qemu.img("info", "--output=json", img).ok().json().get("format").asText(),
                "qemu probes a fixed VHD as raw");
        Dm.run("rollback", img).ok();
        assertArrayEquals(original, Files.readAllBytes(img), "rollback: the raw file byte for byte");

        // and from a CHS size without force_size: creator 'qemu', the geometry gives the size
        Path chs = dir.resolve("chs.img");
        Qemu.create(chs, "raw", "10514432");
        Dm.run("convert", "--in-place", "-O", "vpc", chs).ok();
        assertEquals(10514432L, Qemu.img("info", "-f", "vpc", "--output=json", chs).ok().json()
                .get("virtual-size").asLong());
    }

    @Test
    void aFixedVhdBecomesRawByDroppingItsFooter() throws Exception {
        Path img = dir.resolve("f.vhd");
        Qemu.create(img, "vpc", "10M", "subformat=fixed");
        Qemu.io(img, "vpc", "write -P 0x11 0 64k", "write -P 0x44 10000k 20k");
        byte[] original = Files.readAllBytes(img);
        Path want = dir.resolve("want.raw");
        Qemu.toRaw(img, "vpc", want);
        // probed, it is raw already: nothing to do
        assertTrue(Dm.run("convert", "--in-place", "--output=json", "-O", "raw", img).ok().json()
                .get("nothing-to-change").asBoolean());
        JsonNode dry = Dm.run("convert", "--in-place", "--dry-run", "--output=json", "-f", "vpc", "-O", "raw", img)
                .ok().json();
        assertArrayEquals(original, Files.readAllBytes(img), "a dry run writes nothing");
        JsonNode plan = Dm.run("convert", "--in-place", "--output=json", "-f", "vpc", "-O", "raw", "--keep-rollback",
                img).ok().json();
        assertEquals(dry.get("final-length"), plan.get("final-length"));
        assertEquals(0, plan.get("moved-bytes").asLong());
        assertArrayEquals(Files.readAllBytes(want), Files.readAllBytes(img), "qemu-img convert -O raw's bytes");
        Dm.run("rollback", img).ok();
        assertArrayEquals(original, Files.readAllBytes(img), "rollback: the VHD byte for byte");
    }

    /** What a footer cannot describe is refused in one line, naming the way out; the file is untouched. */
    @ParameterizedTest
    @CsvSource(delimiter = '|', value = {
            "10M | '' | force_size=on",
            "10M | subformat=dynamic | copy conversion",
            "5000000 | azure=on | 5242880",
            "5000001 | force_size=on | sectors"})
    void sizesAFooterCannotDescribeAreRefused(String size, String options, String named) throws Exception {
        Path img = dir.resolve("r.img");
        try (var f = new java.io.RandomAccessFile(img.toFile(), "rw")) { // qemu-img rounds to a sector: not here
            f.setLength(io.diskmorph.image.Sizes.parse(size));
            f.write(new byte[4096]);
        }
        byte[] original = Files.readAllBytes(img);
        for (boolean dry : new boolean[]{true, false}) {
            Dm.Result r = options.isEmpty()
                    ? Dm.run("convert", "--in-place", dry ? "--dry-run" : "-p", "-O", "vpc", img)
                    : Dm.run("convert", "--in-place", dry ? "--dry-run" : "-p", "-O", "vpc", "-o", options, img);
            assertEquals(ExitCodes.UNSUPPORTED, r.exitCode(), r.err());
            assertTrue(r.oneLineError().contains(named), r.err());
            assertArrayEquals(original, Files.readAllBytes(img));
            try (var files = Files.list(dir)) {
                assertEquals(1, files.count(), "no journal left");
            }
        }
    }

    @Test
    void azureGrowExtendsTheDiskToAWholeMiB() throws Exception {
        Path img = raw("5000000");
        Path ref = dir.resolve("ref.raw");
        Files.copy(img, ref);
        Dm.run("convert", "--in-place", "-O", "vpc", "-o", "azure=grow", "--keep-rollback", img).ok();
        assertEquals((5L << 20) + 512, Files.size(img));
        assertEquals(5L << 20, Qemu.img("info", "-f", "vpc", "--output=json", img).ok().json()
                .get("virtual-size").asLong());
        Qemu.Result cmp = Qemu.img("compare", "-f", "vpc", "-F", "raw", img, ref);
        assertEquals(0, cmp.exitCode(), "the grown tail reads zeros: " + cmp.out());
        Dm.run("rollback", img).ok();
        assertArrayEquals(Files.readAllBytes(ref), Files.readAllBytes(img));
    }

    /**
     * A dynamic VHD's blocks lie 512 bytes after their bitmaps: at the
     * default (the 2 MiB block size) nothing stays and the plan says what
     * smaller clusters would keep; at 512 bytes every data byte stays.
     */
    @Test
    void aDynamicVhdKeepsItsDataAt512ByteClusters() throws Exception {
        Path img = dir.resolve("d.vhd");
        Qemu.create(img, "vpc", "16M");
        Qemu.io(img, "vpc", "write -P 1 0 3M", "write -P 2 5M 2M", "write -P 3 12M 4M");
        Path want = dir.resolve("want.raw");
        Qemu.toRaw(img, "vpc", want);
        JsonNode dry = Dm.run("convert", "--in-place", "--dry-run", "--output=json", "-O", "qcow2", img).ok().json();
        assertEquals(0, dry.get("kept-bytes").asLong());
        String note = dry.get("notes").toString();
        assertTrue(note.contains("cluster_size=512: about 9.01 MiB"), note);
        List<Qemu.MapLine> before = Qemu.map(img, "vpc");
        JsonNode plan = Dm.run("convert", "--in-place", "--output=json", "-O", "qcow2", "-o", "cluster_size=512", img)
                .ok().json();
        assertEquals(0, plan.get("moved-bytes").asLong(), plan.toString());
        Oracles.assertCheckClean(img, "qcow2");
        assertEquals(0, Qemu.img("compare", "-f", "qcow2", "-F", "raw", img, want).exitCode());
        // every written byte is where it was (the blocks' unwritten parts are holes: unallocated now)
        List<Qemu.MapLine> after = Qemu.map(img, "qcow2");
        for (long g : new long[]{0, 1 << 20, (2 << 20) + 4096, 5 << 20, (6 << 20) + 512, 12 << 20, (16 << 20) - 512}) {
            assertEquals(hostOf(before, g), hostOf(after, g), "host offset of guest " + g);
        }
    }

    private static long hostOf(List<Qemu.MapLine> map, long guest) {
        for (Qemu.MapLine l : map) {
            if (guest >= l.start() && guest < l.start() + l.length()) {
                assertTrue(l.data() && l.offset() >= 0, "data at " + guest + ": " + l);
                return l.offset() + guest - l.start();
            }
        }
        throw new AssertionError("no map line at " + guest);
    }

    /** A fixed VHD to qcow2 and QED: its data is a raw disk at offset 0, the footer dead space past it. */
    @ParameterizedTest
    @CsvSource({"qcow2, ''", "qed, ''", "qcow2, cluster_size=4k"})
    void aFixedVhdKeepsItsDataLikeRaw(String target, String options) throws Exception {
        Path img = dir.resolve("f.vhd");
        Qemu.create(img, "vpc", "10M", "subformat=fixed");
        Qemu.io(img, "vpc", "write -P 0x11 0 64k", "write -P 0x22 1M 1M", "write -P 0x44 9M 512k");
        Path want = dir.resolve("want.raw");
        Qemu.toRaw(img, "vpc", want);
        // qemu maps the file's holes as zeros at their offsets: they read zeros and become unallocated
        List<Qemu.MapLine> before = Qemu.map(img, "vpc").stream().filter(l -> !l.zero()).toList();
        JsonNode plan = options.isEmpty()
                ? Dm.run("convert", "--in-place", "--output=json", "-f", "vpc", "-O", target, img).ok().json()
                : Dm.run("convert", "--in-place", "--output=json", "-f", "vpc", "-O", target, "-o", options, img)
                .ok().json();
        if (target.equals("qcow2")) { // QED's dense layout moves data above free space down (VdiInPlaceTest)
            assertTrue(plan.get("kept-bytes").asLong() >= (1L << 20) + (512 << 10), plan.toString());
        }
        Oracles.assertCheckClean(img, target);
        assertEquals(0, Qemu.img("compare", "-f", target, "-F", "raw", img, want).exitCode());
        Oracles.assertKeptInPlace(before, Qemu.map(img, target), plan.get("moved-bytes").asLong());
        assertFalse(Files.exists(dir.resolve("f.vhd.dmjournal")));
    }
}
