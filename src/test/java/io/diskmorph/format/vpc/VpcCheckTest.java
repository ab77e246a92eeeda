package io.diskmorph.format.vpc;

import io.diskmorph.image.ExitCodes;
import io.diskmorph.testing.Dm;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * diskmorph's VHD check (qemu-img 7.2 has none: exit 63) and its repair:
 * each damage is reported as a corruption (exit 2) with one line naming
 * it; -r all restores a footer from its good copy, byte for byte what
 * qemu-img made, and leaves what it cannot determine alone (exit 2, file
 * unchanged).
 */
class VpcCheckTest {
    @TempDir
    Path dir;

    private Path qemuImage(String options) {
        Path img = dir.resolve("i.vhd");
        Qemu.create(img, "vpc", "8M", options);
        Qemu.io(img, "vpc", "write -P 1 0 64k", "write -P 2 4M 64k");
        return img;
    }

    @Test
    void qemuImagesCheckCleanAndQemuHasNoCheck() throws Exception {
        for (String o : new String[]{"subformat=dynamic", "subformat=fixed"}) {
            Path img = qemuImage(o);
            assertEquals(ExitCodes.CHECK_UNSUPPORTED, Qemu.img("check", "-f", "vpc", img).exitCode());
            Dm.Result r = Dm.run("check", "-f", "vpc", img);
            assertEquals(ExitCodes.CHECK_CLEAN, r.exitCode(), r.err() + r.out());
            Files.delete(img);
        }
    }

    /** A damaged footer at either end of a dynamic image, or a missing one at the end: repaired from the other. */
    @Test
    void aDamagedFooterIsRestoredFromItsCopy() throws Exception {
        Path img = qemuImage("subformat=dynamic");
        byte[] good = Files.readAllBytes(img);
        long n = good.length;
        for (String damage : new String[]{"copy at 0", "copy at 0 zeroed", "footer at the end", "footer cut off"}) {
            Files.write(img, good);
            switch (damage) {
                case "copy at 0" -> VpcFiles.poke(img, 70, (byte) (good[70] ^ 1));
                case "copy at 0 zeroed" -> VpcFiles.poke(img, 0, new byte[512]);
                case "footer at the end" -> VpcFiles.poke(img, n - 512 + 70, (byte) (good[(int) n - 512 + 70] ^ 1));
                default -> {
                    try (FileChannel ch = FileChannel.open(img, StandardOpenOption.WRITE)) {
                        ch.truncate(n - 512);
                    }
                }
            }
            Dm.Result check = Dm.run("check", "-f", "vpc", img);
            assertEquals(ExitCodes.CHECK_CORRUPT, check.exitCode(), damage + ": " + check.err() + check.out());
            assertTrue(check.err().contains("ERROR: ") && check.err().contains("footer"), damage + ": " + check.err());
            Dm.Result repair = Dm.run("check", "-r", "all", "-f", "vpc", img);
            assertEquals(ExitCodes.CHECK_CLEAN, repair.exitCode(), damage + ": " + repair.err() + repair.out());
            assertTrue(repair.out().contains("repaired"), damage + ": " + repair.out());
            assertArrayEquals(good, Files.readAllBytes(img), damage + ": the repair restores qemu's bytes");
        }
        // a copy at 0 with a wrong checksum is what qemu reads: it refuses the image, and so does info
        VpcFiles.poke(img, 70, (byte) (good[70] ^ 1));
        assertNotEquals(0, Qemu.img("info", "-f", "vpc", img).exitCode());
        Dm.Result info = Dm.run("info", img);
        assertEquals(ExitCodes.CORRUPT, info.exitCode());
        assertTrue(info.oneLineError().contains("Incorrect header checksum"), info.err());
    }

    /** What no good copy determines: reported, and left byte for byte as it was by -r all. */
    @Test
    void damageWithoutAGoodCopyIsReportedAndLeft() throws Exception {
        Path img = qemuImage("subformat=dynamic");
        byte[] good = Files.readAllBytes(img);
        Object[][] cases = {
                {"header checksum", 512 + 40, "dynamic header"},
                // block 2 moved onto block 0 (entry 2 at 0x608 takes entry 0's sector 4)
                {"overlapping blocks", -1, "overlap"},
                {"block over the BAT", -2, "BAT"}};
        for (Object[] c : cases) {
            Files.write(img, good);
            int at = (int) c[1];
            if (at >= 0) {
                VpcFiles.poke(img, at, (byte) (good[at] ^ 1));
            } else if (at == -1) {
                VpcFiles.poke(img, 0x608, good[0x600], good[0x601], good[0x602], good[0x603]);
            } else {
                VpcFiles.poke(img, 0x600, (byte) 0, (byte) 0, (byte) 0, (byte) 3);
            }
            byte[] damaged = Files.readAllBytes(img);
            Dm.Result check = Dm.run("check", "-f", "vpc", img);
            assertEquals(ExitCodes.CHECK_CORRUPT, check.exitCode(), c[0] + ": " + check.err() + check.out());
            assertTrue(check.err().contains((String) c[2]), c[0] + ": " + check.err());
            Dm.Result repair = Dm.run("check", "-r", "all", "-f", "vpc", img);
            assertEquals(ExitCodes.CHECK_CORRUPT, repair.exitCode(), c[0] + ": " + repair.err());
            assertArrayEquals(damaged, Files.readAllBytes(img), c[0] + ": left as it was");
        }
    }

    /** A fixed image: its one footer damaged is a corruption nothing can repair. */
    @Test
    void aFixedImagesFooterHasNoCopy() throws Exception {
        Path img = qemuImage("subformat=fixed");
        long n = Files.size(img);
        VpcFiles.poke(img, n - 512 + 70, (byte) 0x5a);
        byte[] damaged = Files.readAllBytes(img);
        assertEquals(ExitCodes.CHECK_CORRUPT, Dm.run("check", "-f", "vpc", img).exitCode());
        assertEquals(ExitCodes.CHECK_CORRUPT, Dm.run("check", "-r", "all", "-f", "vpc", img).exitCode());
        assertArrayEquals(damaged, Files.readAllBytes(img));
        assertEquals(ExitCodes.CORRUPT, Dm.run("info", "-f", "vpc", img).exitCode());
    }
}
