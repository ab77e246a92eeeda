package io.diskmorph.cli;

import io.diskmorph.image.ExitCodes;
import io.diskmorph.testing.Dm;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/** create over an existing file: an option that is refused leaves the file as it was (it used to be truncated). */
class CreateCommandTest {
    @TempDir
    Path dir;

    @ParameterizedTest
    @CsvSource({"qcow2, cluster_size=3", "qcow2, refcount_bits=7", "qed, table_size=3", "qcow2, no_such_option=1",
            "raw, preallocation=sometimes"})
    void aRefusedOptionLeavesAnExistingFileAlone(String format, String option) throws Exception {
        Path f = dir.resolve("existing.img");
        Qemu.create(f, "qcow2", "16M");
        Qemu.io(f, "qcow2", "write -P 0x61 0 1M");
        byte[] before = Files.readAllBytes(f);
        Dm.Result r = Dm.run("create", "-f", format, "-o", option, f, "64M");
        assertEquals(ExitCodes.USAGE, r.exitCode(), r.err());
        r.oneLineError();
        assertArrayEquals(before, Files.readAllBytes(f), "the file was changed by a refused create");
    }
}
