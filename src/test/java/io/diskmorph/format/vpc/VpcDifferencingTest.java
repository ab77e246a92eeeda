package io.diskmorph.format.vpc;

import io.diskmorph.image.DiskImage;
import io.diskmorph.image.ExitCodes;
import io.diskmorph.image.ImageException;
import io.diskmorph.image.Images;
import io.diskmorph.image.OpenOptions;
import io.diskmorph.testing.Dm;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Differencing VHDs, which qemu-img 7.2 cannot make and reads without
 * their parent: built here from qemu-made dynamic images (disk type 4, the
 * parent's UUID and name, sector bitmaps that keep only the sectors the
 * child wrote). diskmorph reads the child's sectors where its bitmap says
 * so and the parent's everywhere else; vhdiinfo names the same parent;
 * writes, in-place conversion and a parent with another UUID are refused
 * in one line.
 */
class VpcDifferencingTest {
    @TempDir
    Path dir;

    private static final long MIB = 1 << 20;

    /** parent.vhd (8 MiB, 0x11 over its first 6 MiB) and child.vhd over it; returns the guest bytes expected. */
    private byte[] build(String locatorPath, String headerName) throws Exception {
        Path parent = dir.resolve("parent.vhd");
        Qemu.create(parent, "vpc", "8M");
        Qemu.io(parent, "vpc", "write -P 0x11 0 6M");
        Path child = dir.resolve("child.vhd");
        Qemu.create(child, "vpc", "8M");
        // qemu writes whole blocks' bitmaps as all ones; the bitmaps are cut down to the sectors written below
        Qemu.io(child, "vpc", "write -P 0x22 1M 64k", "write -P 0x33 4100k 8k");
        Path p = dir.resolve("p.raw");
        Qemu.toRaw(parent, "vpc", p);
        byte[] expected = Files.readAllBytes(p);
        for (int i = 0; i < 64 << 10; i++) {
            expected[(int) MIB + i] = 0x22;
        }
        for (int i = 0; i < 8 << 10; i++) {
            expected[(4100 << 10) + i] = 0x33;
        }
        byte[] parentUuid = new byte[16];
        ByteBuffer.wrap(Files.readAllBytes(parent), (int) Files.size(parent) - 512 + VpcFooter.OFF_UUID, 16)
                .get(parentUuid);
        VpcFiles.editFooters(child, b -> b.putInt(VpcFooter.OFF_TYPE, VpcFooter.TYPE_DIFFERENCING));
        byte[] c = Files.readAllBytes(child);
        ByteBuffer cb = ByteBuffer.wrap(c);
        int block0 = cb.getInt(0x600) * 512;
        int block2 = cb.getInt(0x608) * 512;
        java.util.Arrays.fill(c, block0, block0 + 512, (byte) 0);
        java.util.Arrays.fill(c, block0 + 256, block0 + 256 + 16, (byte) 0xff); // sectors 2048..2175: 1 MiB + 64 KiB
        java.util.Arrays.fill(c, block2, block2 + 512, (byte) 0);
        c[block2 + 1] = (byte) 0xff; // sectors 8..23 of block 2: 4 MiB + 4 KiB .. + 12 KiB
        c[block2 + 2] = (byte) 0xff;
        Files.write(child, c);
        VpcFiles.editHeader(child, b -> {
            b.put(VpcDynamicHeader.OFF_PARENT_UUID, parentUuid);
            b.put(VpcDynamicHeader.OFF_PARENT_NAME, headerName.getBytes(StandardCharsets.UTF_16BE));
            if (locatorPath != null) {
                byte[] path = locatorPath.getBytes(StandardCharsets.UTF_16LE);
                b.putInt(VpcDynamicHeader.OFF_LOCATORS, VpcDynamicHeader.W2RU).putInt(VpcDynamicHeader.OFF_LOCATORS + 4, 1)
                        .putInt(VpcDynamicHeader.OFF_LOCATORS + 8, path.length)
                        .putLong(VpcDynamicHeader.OFF_LOCATORS + 16, 1792);
            }
        });
        if (locatorPath != null) { // in the BAT's padding (5 entries of a 512-byte BAT sector)
            VpcFiles.poke(child, 1792, locatorPath.getBytes(StandardCharsets.UTF_16LE));
        }
        return expected;
    }

    private byte[] readThroughDiskmorph(Path img) throws Exception {
        Path out = dir.resolve("out.raw");
        Files.deleteIfExists(out);
        Dm.run("convert", "-f", "vpc", "-O", "raw", img, out).ok();
        return Files.readAllBytes(out);
    }

    @Test
    void readsItsSectorsAndTheParentsByTheBitmap() throws Exception {
        byte[] expected = build(null, "parent.vhd");
        Path child = dir.resolve("child.vhd");
        assertArrayEquals(expected, readThroughDiskmorph(child));
        var info = Dm.run("info", "--output=json", child).ok().json();
        assertEquals("parent.vhd", info.get("backing-filename").asText());
        var map = Dm.map(child, "vpc");
        assertTrue(map.stream().anyMatch(l -> l.depth() == 1 && l.data()), "the parent's data at depth 1: " + map);
        assertTrue(map.stream().anyMatch(l -> l.depth() == 0 && l.data() && l.start() == MIB && l.length() == 64 << 10),
                "the child's 64 KiB at depth 0: " + map);
        String vhdi = Qemu.run("vhdiinfo", child.toString()).ok().out();
        assertTrue(vhdi.contains("Differential") && vhdi.contains("parent.vhd"), vhdi);
        // qemu reads it as a dynamic image without its parent: its own blocks whole, zeros elsewhere
        assertTrue(Qemu.img("info", "--output=json", child).ok().json().path("backing-filename").isMissingNode());
    }

    @Test
    void theRelativeLocatorNamesTheParent() throws Exception {
        byte[] expected = build(".\\parent.vhd", "elsewhere.vhd");
        Path child = dir.resolve("child.vhd");
        assertArrayEquals(expected, readThroughDiskmorph(child));
        assertEquals("parent.vhd", Dm.run("info", "--output=json", child).ok().json().get("backing-filename").asText());
    }

    @Test
    void writesInPlaceAndAnotherParentAreRefused() throws Exception {
        build(null, "parent.vhd");
        Path child = dir.resolve("child.vhd");
        byte[] before = Files.readAllBytes(child);
        try (DiskImage d = Images.open(child, OpenOptions.forWriting().withFormat("vpc"))) {
            assertThrows(ImageException.class, () -> d.write(ByteBuffer.wrap(new byte[512]), 0));
        }
        Dm.Result inPlace = Dm.run("convert", "--in-place", "-O", "qcow2", child);
        assertEquals(ExitCodes.UNSUPPORTED, inPlace.exitCode(), inPlace.err());
        assertTrue(inPlace.oneLineError().contains("differencing"), inPlace.err());
        assertArrayEquals(before, Files.readAllBytes(child));
        // a parent made anew under the same name: another UUID
        Path parent = dir.resolve("parent.vhd");
        Files.delete(parent);
        Qemu.create(parent, "vpc", "8M");
        Dm.Result r = Dm.run("convert", "-f", "vpc", "-O", "raw", child, dir.resolve("x.raw"));
        assertTrue(r.exitCode() != 0 && r.oneLineError().contains("parent UUID"), r.exitCode() + " " + r.err());
    }
}
