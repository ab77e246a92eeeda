package io.diskmorph.format.vdi;

import com.fasterxml.jackson.databind.JsonNode;
import io.diskmorph.image.DiskImage;
import io.diskmorph.image.ExitCodes;
import io.diskmorph.image.ImageException;
import io.diskmorph.image.Images;
import io.diskmorph.image.OpenOptions;
import io.diskmorph.testing.Dm;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * check as qemu-img check -f vdi reports it: the same messages, counters,
 * JSON and exit codes on qemu-made images damaged by hand; -r refused as
 * qemu refuses it; and what qemu misses reported as corruption.
 */
class VdiCheckTest {
    @TempDir
    Path dir;

    /** Three blocks written by qemu-io: map entries 0, 1, (unallocated), 2. */
    private Path sample() {
        Path img = dir.resolve("c.vdi");
        Qemu.create(img, "vdi", "4M");
        Qemu.io(img, "vdi", "write -P 1 0 1M", "write -P 2 1M 1M", "write -P 3 3M 4k");
        return img;
    }

    private static void assertSameCheck(Path img) {
        Qemu.Result q = Qemu.img("check", img);
        Dm.Result d = Dm.run("check", img);
        assertEquals(q.exitCode(), d.exitCode(), "exit code: " + q.err() + " / " + d.err());
        assertEquals(q.out(), d.out(), "summary");
        assertEquals(messages(q.err()), messages(d.err()), "messages");
        Qemu.Result qj = Qemu.img("check", "--output=json", img);
        JsonNode ours = Dm.run("check", "--output=json", img).json();
        JsonNode theirs = qj.json();
        assertEquals(theirs.get("corruptions"), ours.get("corruptions"), "JSON corruptions");
        assertEquals(theirs.get("check-errors"), ours.get("check-errors"), "JSON check-errors");
        assertEquals(theirs.size(), ours.size(), "JSON keys: " + theirs + " / " + ours);
    }

    private static List<String> messages(String err) {
        return err.lines().filter(l -> l.startsWith("ERROR")).toList();
    }

    @Test
    void cleanImagesCheckClean() {
        Path img = sample();
        assertSameCheck(img);
        assertEquals(0, Dm.run("check", img).exitCode());
    }

    @Test
    void twoBlocksOnOneHostBlockAndAnIndexTooLarge() throws Exception {
        Path img = sample();
        VdiFiles.putU32(img, 0x200 + 4, 0); // guest block 1 -> host block 0, which block 0 uses
        VdiFiles.putU32(img, 0x200 + 12, 7); // guest block 3 -> host block 7 of 4
        assertSameCheck(img);
        assertEquals(ExitCodes.CHECK_CORRUPT, Dm.run("check", img).exitCode());
    }

    @Test
    void blocksAllocatedMismatch() throws Exception {
        Path img = sample();
        VdiFiles.putU32(img, 0x184, 5);
        assertSameCheck(img);
        Dm.Result d = Dm.run("check", img);
        assertTrue(d.err().contains("ERROR: allocated blocks mismatch, is 3, should be 5"), d.err());
    }

    /** qemu repairs nothing in a VDI: check -r is refused with exit 63, as qemu-img does, and nothing is written. */
    @Test
    void repairIsRefusedAsQemuRefusesIt() throws Exception {
        Path img = sample();
        VdiFiles.putU32(img, 0x184, 5);
        String before = VdiFiles.sha256(img);
        for (String mode : new String[]{"leaks", "all"}) {
            Qemu.Result q = Qemu.img("check", "-r", mode, img);
            Dm.Result d = Dm.run("check", "-r", mode, img);
            assertEquals(ExitCodes.CHECK_UNSUPPORTED, q.exitCode(), q.err());
            assertEquals(q.exitCode(), d.exitCode(), d.err());
            assertTrue(d.err().contains("This image format does not support checks"), d.err());
        }
        assertEquals(before, VdiFiles.sha256(img), "check -r changed the file");
    }

    /** What qemu does not check: a block past the end of the file, a block beyond blocks_allocated. */
    @Test
    void corruptionsQemuMisses() throws Exception {
        Path img = sample();
        // the file ends inside guest block 3's host block (host block 2)
        try (var ch = java.nio.channels.FileChannel.open(img, java.nio.file.StandardOpenOption.WRITE)) {
            ch.truncate(Files.size(img) - 8192);
        }
        assertEquals(0, Qemu.img("check", img).exitCode(), "qemu misses it");
        Dm.Result d = Dm.run("check", img);
        assertEquals(ExitCodes.CHECK_CORRUPT, d.exitCode(), d.err());
        assertTrue(d.err().contains("lies past the end of the file"), d.err());

        Path other = dir.resolve("other.vdi");
        Qemu.create(other, "vdi", "4M");
        Qemu.io(other, "vdi", "write -P 1 0 1M", "write -P 2 1M 1M");
        VdiFiles.putU32(other, 0x184, 1);
        VdiFiles.putU32(other, 0x200 + 4, VdiFiles.UNALLOCATED); // count right (1), but block 0 ...
        VdiFiles.putU32(other, 0x200, 1); // ... uses host block 1, which the count says is free
        assertEquals(0, Qemu.img("check", other).exitCode(), "qemu misses it");
        Dm.Result o = Dm.run("check", other);
        assertEquals(ExitCodes.CHECK_CORRUPT, o.exitCode(), o.err());
        assertTrue(o.err().contains("counts as free"), o.err());
        // and a write, which would hand host block 1 out again, is refused with the file unchanged
        String before = VdiFiles.sha256(other);
        ImageException e = assertThrows(ImageException.class, () -> {
            try (DiskImage w = Images.open(other, OpenOptions.forWriting().withFormat("vdi"))) {
                w.write(ByteBuffer.wrap(new byte[512]), 3L << 20);
            }
        });
        assertEquals(ExitCodes.CORRUPT, e.exitCode(), e.getMessage());
        assertEquals(before, VdiFiles.sha256(other), "a refused write changed the file");
    }
}
