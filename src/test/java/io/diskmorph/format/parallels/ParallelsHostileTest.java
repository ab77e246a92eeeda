package io.diskmorph.format.parallels;

import io.diskmorph.image.DiskImage;
import io.diskmorph.image.ExitCodes;
import io.diskmorph.image.ImageException;
import io.diskmorph.image.Images;
import io.diskmorph.image.OpenOptions;
import io.diskmorph.testing.Dm;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.nio.ByteBuffer;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Hostile Parallels headers and BATs: every command says what is wrong in
 * one line with a documented exit code (info, map, convert, in place: 65
 * corrupt, 66 unsupported; check: 1; compare: 2), in bounded time and
 * memory, and the file does not change. Where qemu refuses too, the words
 * are qemu's.
 */
class ParallelsHostileTest {
    @TempDir
    Path dir;

    /** 64 KiB clusters, 64 BAT entries, data from 64 KiB: guest clusters 0 and 48 allocated. */
    private Path sample() {
        Path img = dir.resolve("h.parallels");
        Qemu.create(img, "parallels", "4M", "cluster_size=64k");
        Qemu.io(img, "parallels", "write -P 1 0 64k", "write -P 3 3M 4k");
        return img;
    }

    private void refused(Path img, int code, String fragment, boolean infoToo) throws Exception {
        io.diskmorph.testing.Refusals.byEveryCommand(img, dir, code, fragment, infoToo, false);
    }

    /** Header fields qemu refuses (with its words), and bounds it skips. */
    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', value = {
            "zero sectors per cluster | 28 | 4 | 0          | 65 | Invalid image: Zero sectors per track",
            "cluster 1 TiB            | 28 | 4 | 2147483648 | 66 | Invalid image: Too big cluster",
            "cluster size 2^32-512    | 28 | 4 | 4294967295 | 66 | Invalid image: Too big cluster",
            "BAT entries overflow     | 32 | 4 | 4294967295 | 66 | Catalog too large",
            "BAT past EOF             | 32 | 4 | 16777216   | 65 | past the end of the file",
            "data offset past EOF     | 48 | 4 | 1048576    | 65 | past the end of the file",
            "data offset in BAT       | 32 | 4 | 1000       | 65 | lies inside the BAT",
            "disk beyond the BAT      | 36 | 8 | 65536      | 65 | larger than its 64 BAT entries",
            "disk 2^64-1 sectors      | 36 | 8 | -1         | 65 | larger than its 64 BAT entries"})
    void hostileHeaders(String what, long offset, int width, long value, int code, String fragment)
            throws Exception {
        Path img = sample();
        if (width == 4) {
            ParallelsFiles.putU32(img, offset, value);
        } else {
            ParallelsFiles.putU64(img, offset, value);
        }
        if (what.equals("data offset in BAT")) {
            ParallelsFiles.putU32(img, 48, 1); // sector 1: inside the BAT of 1000 entries
        }
        refused(img, code, fragment, true);
        Qemu.Result q = Qemu.img("info", "-f", "parallels", img);
        if (fragment.startsWith("Invalid") || fragment.startsWith("Catalog")) {
            assertTrue(q.exitCode() != 0 && q.err().contains(fragment), "qemu refuses it too: " + q.err());
        }
    }

    /** A BAT entry past the end of the file or over the BAT: info works, every read refuses. */
    @Test
    void entriesPastTheFileOrOverTheBat() throws Exception {
        Path img = sample();
        ParallelsFiles.putEntry(img, 1, 100); // guest cluster 1 -> host cluster 100: past the end of the file
        refused(img, ExitCodes.CORRUPT, "lies past the end of the file", false);
        assertEquals(0, Dm.run("info", img).exitCode());
        assertEquals(ExitCodes.CHECK_CORRUPT, Dm.run("check", img).exitCode());
        // and a write, which would put a new cluster after it, is refused with the file unchanged
        String before = ParallelsFiles.sha256(img);
        ImageException e = assertThrows(ImageException.class, () -> {
            try (DiskImage w = Images.open(img, OpenOptions.forWriting().withFormat("parallels"))) {
                w.write(ByteBuffer.wrap(new byte[512]), 2L << 20);
            }
        });
        assertEquals(ExitCodes.CORRUPT, e.exitCode(), e.getMessage());
        assertEquals(before, ParallelsFiles.sha256(img), "a refused write changed the file");
    }

    @Test
    void formatExtensionRefusesWrites() throws Exception {
        Path img = sample();
        var map = Qemu.map(img, "parallels");
        ParallelsFiles.putU64(img, 56, 128); // ext_off: sector 128 (diskmorph reads no extension: its bitmaps)
        String before = ParallelsFiles.sha256(img);
        ImageException e = assertThrows(ImageException.class, () -> {
            try (DiskImage w = Images.open(img, OpenOptions.forWriting().withFormat("parallels"))) {
                w.write(ByteBuffer.wrap(new byte[512]), 0);
            }
        });
        assertEquals(ExitCodes.UNSUPPORTED, e.exitCode(), e.getMessage());
        assertEquals(before, ParallelsFiles.sha256(img));
        assertEquals(map, Dm.map(img, "parallels"), "the guest as it was");
    }

    @Test
    void truncatedHeader() throws Exception {
        Path img = sample();
        try (var ch = java.nio.channels.FileChannel.open(img, java.nio.file.StandardOpenOption.WRITE)) {
            ch.truncate(40);
        }
        String before = ParallelsFiles.sha256(img);
        Dm.Result r = Dm.run("info", "-f", "parallels", img);
        assertEquals(ExitCodes.CORRUPT, r.exitCode(), r.err());
        assertTrue(r.oneLineError().contains("too short"), r.err());
        assertEquals(before, ParallelsFiles.sha256(img));
    }
}
