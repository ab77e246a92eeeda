package io.diskmorph.format.qed;

import io.diskmorph.image.ExitCodes;
import io.diskmorph.image.ImageException;
import io.diskmorph.image.Images;
import io.diskmorph.image.OpenOptions;
import io.diskmorph.testing.Dm;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Malformed QED headers: one clear line, a non-zero exit code, and the file left as it was. */
class QedHostileHeaderTest {
    @TempDir
    Path dir;

    /**
     * Each row: a name, the byte offset and width of the patched field (or a
     * truncation), the value, whether qemu 7.2 refuses it too, and the
     * exit code of info (65 corrupt, 66 unsupported).
     */
    @ParameterizedTest(name = "{0}")
    @CsvSource({
            "truncated after the header, truncate, 100, -, yes, 65",
            "cluster size 0,              4,  4, 0, yes, 65",
            "cluster size 3000,           4,  4, 3000, yes, 65",
            "cluster size 128 MiB,        4,  4, 134217728, yes, 65",
            "table size 0,                8,  4, 0, yes, 65",
            "table size 3,                8,  4, 3, yes, 65",
            "table size 32,               8,  4, 32, yes, 65",
            "header size 0,               12, 4, 0, no, 65",
            "header size huge,            12, 4, 4294967295, yes, 65",
            "unknown feature bit,         16, 8, 8, yes, 66",
            "L1 offset past EOF,          40, 8, 1073741824, yes, 65",
            "L1 offset misaligned,        40, 8, 66048, yes, 65",
            "L1 offset in the header,     40, 8, 0, yes, 65",
            "image size not sectors,      48, 8, 1000, yes, 65",
            "image size too large,        48, 8, 4611686018427387904, yes, 65",
            "image size negative,         48, 8, -512, yes, 65",
            "backing name outside header, backing, 65530, -, yes, 65",
    })
    void hostileHeaderIsRefused(String name, String field, String width, String value, String qemuRefuses,
                                int exit) throws Exception {
        Path f = dir.resolve("h.qed");
        Qemu.create(f, "qed", "16M");
        Qemu.io(f, "qed", "write -P 1 0 64k");
        switch (field) {
            case "truncate" -> {
                try (FileChannel ch = FileChannel.open(f, StandardOpenOption.WRITE)) {
                    ch.truncate(Long.parseLong(width));
                }
            }
            case "backing" -> {
                QedFiles.putU64(f, 16, QedHeader.F_BACKING_FILE);
                QedFiles.putU32(f, 56, Long.parseLong(width));
                QedFiles.putU32(f, 60, 100);
            }
            default -> {
                long off = Long.parseLong(field);
                if (width.equals("4")) {
                    QedFiles.putU32(f, off, Long.parseLong(value));
                } else {
                    QedFiles.putU64(f, off, Long.parseLong(value));
                }
            }
        }
        String before = QedFiles.digest(f);
        if (qemuRefuses.equals("yes")) {
            assertEquals(1, Qemu.img("info", "-f", "qed", f).exitCode(), "qemu refuses " + name + " too");
        }
        for (Object[] cmd : new Object[][]{{"info", f}, {"info", "-f", "qed", f}, {"map", "-f", "qed", f}}) {
            Dm.Result r = Dm.run(cmd);
            assertEquals(exit, r.exitCode(), name + ": " + r.err());
            r.oneLineError();
        }
        Dm.Result check = Dm.run("check", "-f", "qed", f);
        assertEquals(ExitCodes.CHECK_FAILED, check.exitCode());
        check.oneLineError();
        Dm.Result repair = Dm.run("check", "-r", "all", "-f", "qed", f);
        assertNotEquals(0, repair.exitCode());
        assertThrows(ImageException.class, () -> Images.open(f, OpenOptions.forWriting().withFormat("qed")).close());
        assertEquals(before, QedFiles.digest(f), name + ": the file is untouched");
    }

    /** Shorter than a header: still probed as QED (qemu zero-pads its probe buffer), and refused. */
    @ParameterizedTest(name = "{0} bytes")
    @CsvSource({"4", "40", "63"})
    void fileShorterThanAHeader(int length) throws IOException {
        Path f = dir.resolve("short.qed");
        Qemu.create(f, "qed", "1M");
        try (FileChannel ch = FileChannel.open(f, StandardOpenOption.WRITE)) {
            ch.truncate(length);
        }
        assertEquals(1, Qemu.img("info", f).exitCode());
        for (Object[] cmd : new Object[][]{{"info", f}, {"info", "-f", "qed", f}}) {
            Dm.Result r = Dm.run(cmd);
            assertEquals(ExitCodes.CORRUPT, r.exitCode());
            assertTrue(r.oneLineError().contains("too short"), r.err());
        }
        assertEquals(length, Files.size(f));
    }
}
