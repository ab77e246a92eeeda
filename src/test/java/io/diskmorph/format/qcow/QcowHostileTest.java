package io.diskmorph.format.qcow;

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
 * Hostile qcow headers and tables: every command says what is wrong in one
 * line with a documented exit code (65 corrupt, 66 unsupported; check 1,
 * compare 2), in bounded time and memory, and the file does not change.
 * Where qemu refuses too, the words are qemu's.
 */
class QcowHostileTest {
    @TempDir
    Path dir;

    private Path sample() {
        Path img = dir.resolve("h.qcow");
        Qemu.create(img, "qcow", "4M");
        Qemu.io(img, "qcow", "write -P 1 0 64k", "write -P 3 3M 4k");
        return img;
    }

    private void refused(Path img, int code, String fragment, boolean infoToo) throws Exception {
        io.diskmorph.testing.Refusals.byEveryCommand(img, dir, code, fragment, infoToo, true);
    }

    /** Header fields qemu refuses (with its words), and the bounds it leaves to zero-filled reads. */
    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', value = {
            "cluster_bits 8        | 32 | 1 | 8                   | 65 | Cluster size must be between 512 and 64k",
            "cluster_bits 17       | 32 | 1 | 17                  | 65 | Cluster size must be between 512 and 64k",
            "l2_bits 5             | 33 | 1 | 5                   | 65 | L2 table size must be between 512 and 64k",
            "l2_bits 14            | 33 | 1 | 14                  | 65 | L2 table size must be between 512 and 64k",
            "crypt_method 2        | 36 | 4 | 2                   | 65 | invalid encryption method in qcow header",
            "crypt_method AES      | 36 | 4 | 1                   | 66 | encrypted qcow images (AES",
            "size 1                | 24 | 8 | 1                   | 65 | Image size is too small",
            "size 2^63-1           | 24 | 8 | 9223372036854775807 | 65 | Image too large",
            "size 2^64-1           | 24 | 8 | -1                  | 65 | Image too large",
            "size 2^62: L1 past EOF| 24 | 8 | 4611686018427387904 | 65 | Image too large",
            "L1 past EOF           | 40 | 8 | 1000000             | 65 | lies past the end of the file",
            "L1 offset negative    | 40 | 8 | -8                  | 65 | lies past the end of the file",
            "backing name 2000 B   | 16 | 4 | 2000                | 65 | Backing file name too long"})
    void hostileHeaders(String what, long offset, int width, long value, int code, String fragment)
            throws Exception {
        Path img = sample();
        QcowFiles.put(img, offset, width, value);
        if (what.startsWith("backing")) {
            QcowFiles.put(img, 8, 8, 48);
        }
        refused(img, code, fragment, true);
        if (code == ExitCodes.CORRUPT && !fragment.contains("past the end")) {
            Qemu.Result q = Qemu.img("info", "-f", "qcow", img);
            assertTrue(q.exitCode() != 0, "qemu refuses it too: " + q.out());
        }
    }

    @Test
    void backingNamePastTheEnd() throws Exception {
        Path img = sample();
        QcowFiles.put(img, 8, 8, 1L << 40);
        QcowFiles.put(img, 16, 4, 10);
        refused(img, ExitCodes.CORRUPT, "the backing file name at 0x10000000000", true);
    }

    /** Table entries: an L2 table past the end, a data cluster off the sector grid or past the end. */
    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', value = {
            "L2 table past EOF    | 48   | 1099511627776 | L2 table offset 0x10000000000 lies past the end",
            "cluster misaligned   | 4096 | 8292          | data cluster entry 0x2064 is invalid",
            "cluster past EOF     | 4096 | 1099511627776 | data cluster entry 0x10000000000 is invalid",
            "compressed past EOF  | 4096 | -8998190955974623232 | compressed cluster entry"})
    void hostileEntries(String what, long offset, long value, String fragment) throws Exception {
        Path img = sample();
        QcowFiles.put(img, offset, 8, value);
        refused(img, ExitCodes.CORRUPT, fragment, false);
        assertEquals(0, Dm.run("info", img).exitCode(), "info reads no table");
        assertEquals(ExitCodes.CHECK_CORRUPT, Dm.run("check", img).exitCode(), "check finds it");
    }

    @Test
    void truncatedHeader() throws Exception {
        Path img = sample();
        try (var ch = java.nio.channels.FileChannel.open(img, java.nio.file.StandardOpenOption.WRITE)) {
            ch.truncate(30);
        }
        String before = QcowFiles.sha256(img);
        Dm.Result r = Dm.run("info", "-f", "qcow", img);
        assertEquals(ExitCodes.CORRUPT, r.exitCode(), r.err());
        assertTrue(r.oneLineError().contains("too short for a header"), r.err());
        assertEquals(before, QcowFiles.sha256(img));
    }
}
