package io.diskmorph.format.vmdk;

import io.diskmorph.image.ExitCodes;
import io.diskmorph.testing.Dm;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * check: what qemu-img 7.2 finds (grains whose offset lies past the end of
 * their file: "Check failed", exit 1), found the same way with the same
 * lines; and what it misses, as corruptions (exit 2): redundant directories
 * that disagree, tables and grains past the end, grains and tables over
 * metadata, truncated flat files. No repairs (63, as qemu-img).
 */
class VmdkCheckTest {
    @TempDir
    Path dir;

    /** A qemu-made monolithicSparse with data in the first two grains and in a second grain table. */
    private Path image() {
        Path img = dir.resolve("c.vmdk");
        Qemu.create(img, "vmdk", "64M");
        Qemu.io(img, "vmdk", "write -P 1 0 128k", "write -P 2 40M 64k");
        return img;
    }

    private static long gt(Path img, boolean redundant, int index) throws Exception {
        long directory = VmdkFiles.u64(img, redundant ? 48 : 56);
        return VmdkFiles.u32(img, directory * 512 + 4L * index);
    }

    @ParameterizedTest
    @CsvSource({"monolithicSparse", "monolithicFlat", "twoGbMaxExtentSparse", "streamOptimized"})
    void cleanImagesAgreeWithQemu(String subformat) throws Exception {
        Path raw = VmdkFiles.sampleRaw(dir, "s.raw", "40M", "write -P 3 0 1M", "write -P 4 34M 64k");
        Path img = dir.resolve("ok.vmdk");
        Qemu.img("convert", "-O", "vmdk", "-o", "subformat=" + subformat, raw, img).ok();
        Qemu.Result q = Qemu.img("check", "--output=json", img);
        Dm.Result d = Dm.run("check", "--output=json", img);
        assertEquals(0, q.exitCode());
        assertEquals(0, d.exitCode(), d.err());
        assertEquals(q.json(), d.json());
        assertEquals(Qemu.img("check", img).out(), Dm.run("check", img).out());
    }

    /** qemu's own finding, in both tables (nothing else wrong): the same lines, the same exit code. */
    @Test
    void grainPastTheEndAsQemu() throws Exception {
        Path img = image();
        for (boolean redundant : new boolean[]{false, true}) {
            VmdkFiles.putU32(img, gt(img, redundant, 0) * 512 + 4, 100000); // the second grain
        }
        Qemu.Result q = Qemu.img("check", img);
        Dm.Result d = Dm.run("check", img);
        assertEquals(ExitCodes.CHECK_FAILED, q.exitCode());
        assertEquals(q.exitCode(), d.exitCode());
        assertEquals(q.err().replace("qemu-img:", "diskmorph:"), d.err());
        assertEquals(q.out(), d.out());
        assertTrue(d.err().contains("ERROR: cluster offset for sector 128 points after EOF"), d.err());
        assertEquals(ExitCodes.CHECK_FAILED, Dm.run("check", "--output=json", img).exitCode());
    }

    /** A flat extent that starts at or past the end of its file: qemu's check fails, so does ours. */
    @Test
    void flatExtentPastTheEndAsQemu() throws Exception {
        Path img = dir.resolve("f.vmdk");
        Qemu.create(img, "vmdk", "8M", "subformat=monolithicFlat");
        try (FileChannel ch = FileChannel.open(dir.resolve("f-flat.vmdk"), StandardOpenOption.WRITE)) {
            ch.truncate(0);
        }
        Qemu.Result q = Qemu.img("check", img);
        Dm.Result d = Dm.run("check", img);
        assertEquals(ExitCodes.CHECK_FAILED, q.exitCode());
        assertEquals(q.exitCode(), d.exitCode());
        assertEquals(q.err().replace("qemu-img:", "diskmorph:"), d.err());
    }

    /** Damage qemu-img's check passes: diskmorph counts it as corruption. */
    @ParameterizedTest
    @CsvSource(delimiter = '|', value = {
            "redundant table entry| disagree",
            "redundant directory entry| its redundant copy",
            "table past the end| lies past the end of the file",
            "grain over the descriptor| overlaps the embedded descriptor",
            "grain over a table| overlaps grain table",
            "shared table| metadata overlaps",
            "truncated grain| runs past the end of the file",
            "truncated flat file| past the end of the file"})
    void damageQemuMisses(String damage, String message) throws Exception {
        Path img = image();
        switch (damage) {
            case "redundant table entry" -> VmdkFiles.putU32(img, gt(img, true, 0) * 512 + 8, 0x400);
            case "redundant directory entry" -> VmdkFiles.putU32(img, VmdkFiles.u64(img, 48) * 512 + 4, 0);
            case "table past the end" -> {
                VmdkFiles.putU32(img, VmdkFiles.u64(img, 56) * 512 + 4, 0x7fffffffL);
                VmdkFiles.putU32(img, VmdkFiles.u64(img, 48) * 512 + 4, 0x7fffffffL);
            }
            case "grain over the descriptor" -> {
                VmdkFiles.putU32(img, gt(img, false, 0) * 512 + 8, 2);
                VmdkFiles.putU32(img, gt(img, true, 0) * 512 + 8, 2);
            }
            case "grain over a table" -> {
                long table = gt(img, false, 1);
                VmdkFiles.putU32(img, gt(img, false, 0) * 512 + 8, table);
                VmdkFiles.putU32(img, gt(img, true, 0) * 512 + 8, table);
            }
            case "shared table" -> {
                VmdkFiles.putU32(img, VmdkFiles.u64(img, 56) * 512 + 4, gt(img, false, 0));
                VmdkFiles.putU32(img, VmdkFiles.u64(img, 48) * 512 + 4, gt(img, true, 0));
            }
            case "truncated grain" -> {
                try (FileChannel ch = FileChannel.open(img, StandardOpenOption.WRITE)) {
                    ch.truncate(Files.size(img) - 4096); // into the last grain (guest 40M)
                }
            }
            case "truncated flat file" -> {
                img = dir.resolve("f.vmdk");
                Qemu.create(img, "vmdk", "8M", "subformat=monolithicFlat");
                try (FileChannel ch = FileChannel.open(dir.resolve("f-flat.vmdk"), StandardOpenOption.WRITE)) {
                    ch.truncate(1 << 20);
                }
            }
            default -> throw new IllegalArgumentException(damage);
        }
        assertEquals(0, Qemu.img("check", img).exitCode(), "qemu-img 7.2 now finds: " + damage);
        Dm.Result d = Dm.run("check", img);
        assertEquals(ExitCodes.CHECK_CORRUPT, d.exitCode(), d.err() + d.out());
        assertTrue(d.err().contains(message), d.err());
        assertTrue(d.out().contains("errors were found on the image"), d.out());
        assertTrue(Dm.run("check", "--output=json", img).json().get("corruptions").asLong() >= 1);
    }

    /** No repairs, as qemu-img: -r leaks and -r all exit 63 with qemu's line, and change nothing. */
    @ParameterizedTest
    @CsvSource({"leaks", "all"})
    void noRepairs(String mode) throws Exception {
        Path img = image();
        String before = VmdkFiles.sha256(img);
        assertEquals(ExitCodes.CHECK_UNSUPPORTED, Qemu.img("check", "-r", mode, img).exitCode());
        Dm.Result d = Dm.run("check", "-r", mode, img);
        assertEquals(ExitCodes.CHECK_UNSUPPORTED, d.exitCode(), d.err());
        assertTrue(d.err().contains("This image format does not support checks"), d.err());
        assertEquals(before, VmdkFiles.sha256(img));
    }
}
