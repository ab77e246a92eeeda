package io.diskmorph.format.vdi;

import io.diskmorph.image.ExitCodes;
import io.diskmorph.testing.Dm;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Hostile VDI headers and maps: every command says what is wrong in one
 * line with a documented exit code (info, map, convert, in place: 65
 * corrupt, 66 unsupported; check: 1; compare: 2), in bounded time and
 * memory, and the file does not change. Where qemu refuses too, the words
 * are qemu's.
 */
class VdiHostileTest {
    @TempDir
    Path dir;

    private Path sample() {
        Path img = dir.resolve("h.vdi");
        Qemu.create(img, "vdi", "4M");
        Qemu.io(img, "vdi", "write -P 1 0 1M", "write -P 3 3M 4k");
        return img;
    }

    private void refused(Path img, int code, String fragment, boolean infoToo) throws Exception {
        io.diskmorph.testing.Refusals.byEveryCommand(img, dir, code, fragment, infoToo, false);
    }

    /** Header fields qemu refuses (with its words), and bounds it skips. */
    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', value = {
            "version 1.0        | 68  | 4 | 65536      | 66 | unsupported VDI image (version 1.0)",
            "version 2.1        | 68  | 4 | 131073     | 66 | unsupported VDI image (version 2.1)",
            "map misaligned     | 340 | 4 | 513        | 66 | unaligned block map offset 0x201",
            "data misaligned    | 344 | 4 | 1025       | 66 | unaligned data offset 0x401",
            "sector size 4096   | 360 | 4 | 4096       | 66 | sector size 4096 is not 512",
            "block size 2 MiB   | 376 | 4 | 2097152    | 66 | block size 2097152 is not 1048576",
            "block extra        | 380 | 4 | 512        | 66 | extra bytes per block",
            "disk size > map    | 368 | 8 | 5242880    | 66 | image bitmap has room for 4194304",
            "disk size 2^64-1   | 368 | 8 | -1         | 66 | Unsupported VDI image size",
            "too many blocks    | 384 | 4 | 1073741824 | 66 | too many blocks 1073741824",
            "map past EOF       | 384 | 4 | 1000000    | 65 | past the end of the file",
            "map in header      | 340 | 4 | 0          | 65 | inside the 512-byte header",
            "data in map        | 344 | 4 | 512        | 65 | lies inside the block map",
            "link UUID          | 424 | 4 | 1          | 66 | non-NULL link UUID",
            "parent UUID        | 440 | 4 | 1          | 66 | non-NULL parent UUID"})
    void hostileHeaders(String what, long offset, int width, long value, int code, String fragment)
            throws Exception {
        Path img = sample();
        if (width == 4) {
            VdiFiles.putU32(img, offset, value);
        } else {
            VdiFiles.putU64(img, offset, value);
        }
        refused(img, code, fragment, true);
        Qemu.Result q = Qemu.img("info", "-f", "vdi", img);
        if (code == ExitCodes.UNSUPPORTED && !fragment.contains("extra")) {
            assertTrue(q.exitCode() != 0 && q.err().contains(fragment), "qemu refuses it too: " + q.err());
        }
    }

    /** A map entry past the end of the file or past the image's blocks: info works, every read refuses. */
    @Test
    void entriesPastTheFileOrTheImage() throws Exception {
        Path img = sample();
        VdiFiles.putU32(img, 0x200 + 4, 3); // guest block 1 -> host block 3: past the end of the file
        refused(img, ExitCodes.CORRUPT, "lies past the end of the file", false);
        assertEquals(0, Dm.run("info", img).exitCode());
        assertEquals(ExitCodes.CHECK_CORRUPT, Dm.run("check", img).exitCode());

        Path other = dir.resolve("h2.vdi");
        Qemu.create(other, "vdi", "4M");
        Qemu.io(other, "vdi", "write -P 1 0 1M");
        VdiFiles.putU32(other, 0x200 + 8, 0xfffffff0L); // past the image's 4 blocks
        refused(other, ExitCodes.CORRUPT, "past the 4 blocks of the image", false);
    }

    @Test
    void truncatedHeader() throws Exception {
        Path img = sample();
        try (var ch = java.nio.channels.FileChannel.open(img, java.nio.file.StandardOpenOption.WRITE)) {
            ch.truncate(300);
        }
        String before = VdiFiles.sha256(img);
        Dm.Result r = Dm.run("info", "-f", "vdi", img);
        assertEquals(ExitCodes.CORRUPT, r.exitCode(), r.err());
        assertTrue(r.oneLineError().contains("too short"), r.err());
        assertEquals(before, VdiFiles.sha256(img));
    }
}
