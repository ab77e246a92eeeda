package io.diskmorph.format.vhdx;

import io.diskmorph.image.ExitCodes;
import io.diskmorph.testing.Dm;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Images whose log is active, as a Hyper-V host that lost power leaves
 * them: qemu-io is killed after writes (qemu logs each BAT update before it
 * makes it), and the headers are given the log GUID of the entries qemu
 * left. qemu-img refuses to open such an image read-only; diskmorph reads
 * through the log without writing, and must see what qemu-img sees after
 * it replays the log (check -r all, on a copy).
 */
class VhdxLogTest {
    @TempDir
    Path dir;
    Path img;

    @BeforeEach
    void activeLog() throws Exception {
        img = dir.resolve("log.vhdx");
        Qemu.create(img, "vhdx", "4M", "block_size=1M");
        Qemu.run("sh", "-c", "qemu-io -f vhdx -c 'write -P 0x11 0 4k' -c 'write -P 0x22 2M 4k' -c 'sigraise 9' "
                + img + " >/dev/null 2>&1; true");
        long log = VhdxFiles.read(img, VhdxFiles.HEADER1 + 72, 8).getLong(0);
        assertEquals(0x65676f6c, VhdxFiles.read(img, log, 4).getInt(0), "qemu left a log entry");
        byte[] guid = new byte[16];
        VhdxFiles.read(img, log + 32, 16).get(guid);
        for (long h : new long[]{VhdxFiles.HEADER1, VhdxFiles.HEADER2}) {
            VhdxFiles.write(img, h + 48, java.nio.ByteBuffer.wrap(guid));
        }
        VhdxFiles.fixHeaders(img);
        Qemu.Result info = Qemu.img("info", img);
        assertTrue(info.exitCode() != 0 && info.err().contains("log that needs to be replayed"), info.err());
    }

    /** What qemu-img reads after replaying the log of a copy. */
    private byte[] replayedByQemu(Path image) throws Exception {
        Path copy = dir.resolve("replayed.vhdx");
        Files.copy(image, copy, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        Qemu.img("check", "-r", "all", copy);
        Path raw = dir.resolve("replayed.raw");
        Qemu.toRaw(copy, "vhdx", raw);
        return Files.readAllBytes(raw);
    }

    private byte[] readByDiskmorph(Path image) throws Exception {
        Path raw = dir.resolve("ours.raw");
        Files.deleteIfExists(raw);
        Dm.run("convert", "-O", "raw", image, raw).ok();
        return Files.readAllBytes(raw);
    }

    @Test
    void readsThroughTheLogAsQemuReplaysIt() throws Exception {
        byte[] before = Files.readAllBytes(img);
        assertArrayEquals(replayedByQemu(img), readByDiskmorph(img));
        Dm.Result check = Dm.run("check", img);
        assertEquals(0, check.exitCode(), check.err());
        assertTrue(check.err().contains("log holds 1 entries"), check.err());
        Dm.run("info", img).ok();
        Dm.run("map", "--output=json", img).ok();
        assertArrayEquals(before, Files.readAllBytes(img), "reading through the log writes nothing");
    }

    /**
     * The BAT in the file says block 0 was never written; only the log's
     * copy of the BAT sector has it: read as stale, block 0 would be zeros.
     */
    @Test
    void theLogHoldsWhatTheFileDoesNot() throws Exception {
        VhdxFiles.setBatEntry(img, 0, 0);
        byte[] ours = readByDiskmorph(img);
        assertEquals(0x11, ours[0], "block 0 comes from the log's BAT sector");
        assertArrayEquals(replayedByQemu(img), ours);
    }

    /** The log holds writes: the file cannot be converted in place until it is replayed (66, file unchanged). */
    @Test
    void inPlaceIsRefused() throws Exception {
        byte[] before = Files.readAllBytes(img);
        for (String target : new String[]{"qcow2", "qed"}) {
            Dm.Result r = Dm.run("convert", "--in-place", "-O", target, img);
            assertEquals(ExitCodes.UNSUPPORTED, r.exitCode(), r.err());
            assertTrue(r.oneLineError().contains("log holds 1 entries"), r.err());
        }
        assertArrayEquals(before, Files.readAllBytes(img));
        assertFalse(Files.exists(dir.resolve("log.vhdx.dmjournal")));
    }

    /** A damaged entry (its CRC-32C fails): no valid sequence, nothing to replay; qemu opens it as it is too. */
    @Test
    void damagedEntryIsNotReplayed() throws Exception {
        long log = VhdxFiles.read(img, VhdxFiles.HEADER1 + 72, 8).getLong(0);
        VhdxFiles.putInt(img, log + 100, 0x5a5a5a5a);
        Path raw = dir.resolve("qemu.raw");
        Qemu.toRaw(img, "vhdx", raw);
        assertArrayEquals(Files.readAllBytes(raw), readByDiskmorph(img));
        Dm.Result check = Dm.run("check", img);
        assertFalse(check.err().contains("log holds"), check.err());
    }
}
