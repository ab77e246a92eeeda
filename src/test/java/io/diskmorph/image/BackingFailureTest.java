package io.diskmorph.image;

import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertThrows;

/**
 * A backing file that fails to open stays failed: a second read must not
 * find no backing file and read zeros where its data should show.
 */
class BackingFailureTest {
    @TempDir
    Path dir;

    @Test
    void aBackingFileThatFailedToOpenNeverReadsAsZeros() throws Exception {
        Path base = dir.resolve("base.qcow2");
        Qemu.create(base, "qcow2", "1M");
        Qemu.io(base, "qcow2", "write -P 0x77 0 1M");
        Path top = dir.resolve("top.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", top, "1M").ok();
        Files.delete(base);
        try (DiskImage img = Images.open(top, OpenOptions.forReading())) {
            assertThrows(NoSuchFileException.class, () -> img.read(ByteBuffer.allocate(4096), 0));
            assertThrows(NoSuchFileException.class, () -> img.read(ByteBuffer.allocate(4096), 0), "second read");
            assertThrows(NoSuchFileException.class, img::backing);
        }
    }
}
