package io.diskmorph.format.vhdx;

import io.diskmorph.image.ExitCodes;
import io.diskmorph.testing.Dm;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Damaged and hostile VHDX files (a qemu-made image with one field changed,
 * checksums recomputed so that the field itself is judged): every command
 * refuses with one line naming the problem and a documented exit code, in
 * bounded time, and leaves the file byte-identical.
 */
class VhdxHostileTest {
    @TempDir
    Path dir;
    Path img;
    long bat;
    long meta;

    @BeforeEach
    void sample() throws Exception {
        img = dir.resolve("h.vhdx");
        Qemu.create(img, "vhdx", "12M", "block_size=1M");
        Qemu.io(img, "vhdx", "write -P 0x11 0 64k", "write -P 0x22 3M 1M");
        bat = VhdxFiles.region(img, VhdxFiles.BAT_GUID);
        meta = VhdxFiles.region(img, VhdxFiles.METADATA_GUID);
    }

    private static String sha256(Path p) throws Exception {
        return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(Files.readAllBytes(p)));
    }

    /** Every command refuses {@code img} with {@code code} (check: 1, compare: 2) and a line saying {@code fragment}. */
    private void refused(int code, String fragment) throws Exception {
        String before = sha256(img);
        Path out = dir.resolve("out.raw");
        List<String> problems = new ArrayList<>();
        assertTimeoutPreemptively(Duration.ofSeconds(20), () -> {
            for (Object[] cmd : new Object[][]{{"info", img}, {"map", "--output=json", img}, {"check", img},
                    {"compare", img, img}, {"convert", "-O", "raw", img, out}, {"measure", "-O", "qcow2", img},
                    {"convert", "--in-place", "-O", "qcow2", img}}) {
                Dm.Result r = Dm.run(cmd);
                String what = cmd[0] + ": ";
                int expected = cmd[0].equals("check") ? ExitCodes.CHECK_FAILED
                        : cmd[0].equals("compare") ? ExitCodes.COMPARE_ERROR : code;
                if (r.exitCode() != expected) {
                    problems.add(what + "exit " + r.exitCode() + " (expected " + expected + "): " + r.err());
                }
                String line = r.oneLineError();
                if (!line.contains(fragment)) {
                    problems.add(what + "'" + line + "' does not say '" + fragment + "'");
                }
            }
        });
        assertTrue(problems.isEmpty(), String.join("\n", problems));
        assertTrue(!Files.exists(out), "a refused copy left its target");
        assertEquals(before, sha256(img), "a refusal changed the file");
    }

    private void regionEntry(int index, int field, long value, boolean isLong) throws Exception {
        for (long table : new long[]{VhdxFiles.REGION1, VhdxFiles.REGION2}) {
            long at = table + 16 + 32L * index + field;
            if (isLong) {
                VhdxFiles.putLong(img, at, value);
            } else {
                VhdxFiles.putInt(img, at, (int) value);
            }
        }
        VhdxFiles.fixRegionTables(img);
    }

    private int batIndexInTable() throws Exception {
        return VhdxFiles.guid(VhdxFiles.read(img, VhdxFiles.REGION1 + 16, 16), 0).equals(VhdxFiles.BAT_GUID) ? 0 : 1;
    }

    @Test
    void regionTableWithThousandsOfEntries() throws Exception {
        VhdxFiles.putInt(img, VhdxFiles.REGION1 + 8, 3000);
        VhdxFiles.putInt(img, VhdxFiles.REGION2 + 8, 3000);
        VhdxFiles.fixRegionTables(img);
        refused(ExitCodes.CORRUPT, "3000 entries");
    }

    @Test
    void regionPastTwoToTheSixtyThree() throws Exception {
        regionEntry(batIndexInTable(), 16, 0x7FFFFFFFFFFFF000L, true);
        refused(ExitCodes.CORRUPT, "past 2^63");
    }

    @Test
    void regionsOverlap() throws Exception {
        regionEntry(1 - batIndexInTable(), 16, bat, true); // the metadata region over the BAT
        refused(ExitCodes.CORRUPT, "overlaps");
    }

    @Test
    void batSmallerThanTheDiskNeeds() throws Exception {
        regionEntry(batIndexInTable(), 24, 64, false); // 8 entries for 12 blocks
        refused(ExitCodes.CORRUPT, "needs 12");
    }

    @Test
    void unknownRequiredRegion() throws Exception {
        VhdxFiles.putInt(img, VhdxFiles.REGION1 + 8, 3);
        VhdxFiles.putInt(img, VhdxFiles.REGION2 + 8, 3);
        regionEntry(2, 0, 0x01020304, false);
        regionEntry(2, 16, 200L << 20, true);
        regionEntry(2, 24, 1 << 20, false);
        regionEntry(2, 28, 1, false);
        refused(ExitCodes.UNSUPPORTED, "marked required");
    }

    @Test
    void metadataTableWithThousandsOfEntries() throws Exception {
        VhdxFiles.write(img, meta + 10, java.nio.ByteBuffer.wrap(new byte[]{(byte) 0xb8, 0x0b})); // 3000
        refused(ExitCodes.CORRUPT, "3000 entries");
    }

    @Test
    void metadataItemOutsideTheRegion() throws Exception {
        VhdxFiles.putInt(img, meta + 32 + 16, 0x7ffffff0); // the first item's offset
        refused(ExitCodes.CORRUPT, "outside the metadata region");
    }

    @Test
    void hugeVirtualSize() throws Exception {
        VhdxFiles.putLong(img, VhdxFiles.item(img, VhdxFiles.VIRTUAL_SIZE_GUID), 1L << 62);
        refused(ExitCodes.CORRUPT, "virtual disk size");
    }

    @Test
    void blockSizeNotAPowerOfTwo() throws Exception {
        VhdxFiles.putInt(img, VhdxFiles.item(img, VhdxFiles.FILE_PARAMETERS_GUID), 3 << 20);
        refused(ExitCodes.CORRUPT, "block size");
    }

    @Test
    void parentWithoutLocator() throws Exception {
        VhdxFiles.putInt(img, VhdxFiles.item(img, VhdxFiles.FILE_PARAMETERS_GUID) + 4, 2);
        refused(ExitCodes.CORRUPT, "no parent locator");
    }

    @Test
    void unknownRequiredMetadataItem() throws Exception {
        int n = VhdxFiles.read(img, meta + 10, 2).getShort(0);
        long at = meta + 32 + 32L * n;
        VhdxFiles.putLong(img, at, 0x1122334455667788L);
        VhdxFiles.putInt(img, at + 24, 4);
        VhdxFiles.write(img, meta + 10, java.nio.ByteBuffer.wrap(new byte[]{(byte) (n + 1), 0}));
        refused(ExitCodes.UNSUPPORTED, "marked required");
    }

    /** An active log whose region is not whole MiBs: refused, never guessed at. */
    @Test
    void activeLogOfAnOddSize() throws Exception {
        for (long h : new long[]{VhdxFiles.HEADER1, VhdxFiles.HEADER2}) {
            VhdxFiles.putLong(img, h + 48, 0x0123456789abcdefL);
            VhdxFiles.putInt(img, h + 68, 4096);
        }
        VhdxFiles.fixHeaders(img);
        refused(ExitCodes.CORRUPT, "not a whole number of MiB");
    }

    /**
     * A fully present block past the end of the file: qemu-img check counts a
     * corruption (exit 2) and so does diskmorph's; reads through it, copies
     * and in-place conversion are refused (65), the file untouched.
     */
    @Test
    void blockPastTheEndOfTheFile() throws Exception {
        VhdxFiles.setBatEntry(img, 5, (500L << 20) | 6);
        String before = sha256(img);
        Qemu.Result q = Qemu.check(img, "vhdx");
        Dm.Result d = Dm.run("check", "--output=json", img);
        assertEquals(ExitCodes.CHECK_CORRUPT, q.exitCode(), q.err());
        assertEquals(q.exitCode(), d.exitCode(), d.err());
        assertEquals(q.json(), d.json(), "the counters");
        assertTrue(d.err().contains("VHDX BAT entry 5 start offset 524288000 points after end of file"), d.err());
        for (Object[] cmd : new Object[][]{{"map", "--output=json", img}, {"convert", "-O", "raw", img,
                dir.resolve("o.raw")}, {"convert", "--in-place", "-O", "qcow2", img},
                {"convert", "--in-place", "-O", "qed", img}}) {
            Dm.Result r = Dm.run(cmd);
            assertEquals(ExitCodes.CORRUPT, r.exitCode(), cmd[0] + ": " + r.err());
            r.oneLineError();
        }
        assertEquals(before, sha256(img));
    }

    /** Two blocks at one place, a block over the BAT, a block in the header section: all counted by check. */
    @Test
    void overlappingBlocks() throws Exception {
        long e0 = VhdxFiles.batEntry(img, 0);
        VhdxFiles.setBatEntry(img, 7, e0);               // over block 0
        VhdxFiles.setBatEntry(img, 8, bat | 6);           // over the BAT
        VhdxFiles.setBatEntry(img, 9, 6);                 // offset 0: the header section
        Qemu.Result q = Qemu.check(img, "vhdx");
        assertEquals(ExitCodes.CHECK_CORRUPT, q.exitCode(), "qemu sees the block over the BAT: " + q.err());
        Dm.Result d = Dm.run("check", img);
        assertEquals(ExitCodes.CHECK_CORRUPT, d.exitCode(), d.err());
        assertTrue(d.out().contains("3 errors were found"), d.out() + d.err());
        assertTrue(d.err().contains("overlaps another payload"), d.err());
        assertTrue(d.err().contains("over the BAT"), d.err());
        assertTrue(d.err().contains("header section"), d.err());
        Dm.Result ip = Dm.run("convert", "--in-place", "-O", "qcow2", img);
        assertEquals(ExitCodes.CORRUPT, ip.exitCode(), ip.err());
    }
}
