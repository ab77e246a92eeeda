package io.diskmorph.format.qcow2;

import io.diskmorph.image.DiskImage;
import io.diskmorph.image.ImageException;
import io.diskmorph.image.Images;
import io.diskmorph.image.OpenOptions;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A raw image opened by probing refuses a guest write that would make its
 * first sector probe as qcow2 (RawImage.refuseFormatChangingWrite, as QEMU
 * does); named with -f raw the write goes through. Lives here because it
 * needs a second registered format.
 */
class RawProbedWriteTest {
    @TempDir
    Path dir;

    @Test
    void probedRawRefusesAWriteThatMakesItQcow2() throws Exception {
        Path raw = dir.resolve("guest.img");
        Qemu.create(raw, "raw", "1M");
        Path qcow2 = dir.resolve("other.qcow2");
        Qemu.create(qcow2, "qcow2", "1M");
        byte[] header = Arrays.copyOf(Files.readAllBytes(qcow2), 512);
        byte[] before = Files.readAllBytes(raw);

        try (DiskImage img = Images.open(raw, OpenOptions.forWriting())) {
            assertEquals("raw", img.format().name());
            var e = assertThrows(ImageException.class, () -> img.write(ByteBuffer.wrap(header), 0));
            assertTrue(e.getMessage().contains("-f raw"), e.getMessage());
            // the same bytes elsewhere, and harmless bytes at the start, are fine
            img.write(ByteBuffer.wrap(header), 4096);
            img.write(ByteBuffer.wrap(new byte[]{1, 2, 3}), 0);
        }
        byte[] after = Files.readAllBytes(raw);
        assertEquals(0, after[4]);
        assertEquals(-1, Arrays.mismatch(Arrays.copyOfRange(before, 3, 4096), Arrays.copyOfRange(after, 3, 4096)),
                "the refused write left the first sector alone");

        try (DiskImage img = Images.open(raw, OpenOptions.forWriting().withFormat("raw"))) {
            img.write(ByteBuffer.wrap(header), 0);
        }
        assertEquals(-1, Arrays.mismatch(header, Arrays.copyOf(Files.readAllBytes(raw), 512)));
    }
}
