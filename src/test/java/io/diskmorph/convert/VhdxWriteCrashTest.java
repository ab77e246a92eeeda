package io.diskmorph.convert;

import io.diskmorph.format.vhdx.VhdxFormat;
import io.diskmorph.image.DiskImage;
import io.diskmorph.image.OpenContext;
import io.diskmorph.storage.MemoryStorage;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * VHDX guest writes crashed at every logged operation ({@link CrashSim}):
 * BAT entries are written in place, not through the log, which is sound
 * only if an entry never reaches the disk before the block data it names.
 * Checked two ways: in the operation log itself (every BAT write that
 * names a new block comes after a sync that made all of that block's data
 * durable), and in every crash state (unsynced writes dropped, kept,
 * reversed, randomly kept, the last one torn): the image opens, and every
 * guest byte is what it was before the session or what one of the
 * session's writes put there; a sample is checked by qemu-img.
 */
class VhdxWriteCrashTest {
    private static final int MIB = 1 << 20;

    @TempDir
    Path dir;

    private record W(long offset, int length, byte value) {
    }

    @Test
    void aCrashAtAnyWriteLeavesOldOrNewDataAndASoundImage() throws Exception {
        Path img = dir.resolve("w.vhdx");
        long size = 6L * MIB;
        Qemu.create(img, "vhdx", String.valueOf(size), "block_size=1M");
        Qemu.io(img, "vhdx", "write -P 0x11 0 1M", "write -P 0x12 3M 64k");
        Path raw = dir.resolve("before.raw");
        Qemu.toRaw(img, "vhdx", raw);
        byte[] guestBefore = Files.readAllBytes(raw);
        byte[] fileBefore = Files.readAllBytes(img);
        long batOffset = 2L * MIB; // qemu-img's layout: log at 1 MiB, BAT at 2 MiB
        assertEquals(2L * MIB, ByteBuffer.wrap(fileBefore, 192 * 1024 + 32, 8).order(ByteOrder.LITTLE_ENDIAN)
                .getLong(), "the BAT region of qemu-img's file");

        List<W> writes = List.of(new W(100 * 1024, 8192, (byte) 0x21), new W(MIB + 512, 4096, (byte) 0x22),
                new W(2L * MIB, MIB, (byte) 0x23), new W(3L * MIB + 32 * 1024, 65536, (byte) 0x24),
                new W(5L * MIB + 1000, 3000, (byte) 0x25), new W(4L * MIB + 4096, 4096, (byte) 0x26));
        CrashSim sim = new CrashSim(Map.of("img", fileBefore));
        try (DiskImage d = new VhdxFormat().open(sim.file("img"), new OpenContext(img, false, null, false))) {
            for (int i = 0; i < writes.size(); i++) {
                W w = writes.get(i);
                byte[] data = new byte[w.length()];
                java.util.Arrays.fill(data, w.value());
                d.write(ByteBuffer.wrap(data), w.offset());
                if (i == 2) {
                    d.flush();
                }
            }
        }
        assertTrue(sim.log.size() > 10, "the session was recorded: " + sim.log.size());
        assertBatWritesFollowTheirData(sim.log, batOffset, fileBefore.length);

        int states = 0;
        int checkedByQemu = 0;
        for (int prefix = 0; prefix <= sim.log.size(); prefix++) {
            for (CrashSim.FileFate fate : CrashSim.FileFate.values()) {
                byte[] file = sim.crashState(prefix, fate, true, prefix * 31L + fate.ordinal()).get("img");
                byte[] guest = new byte[(int) size];
                try (DiskImage d = new VhdxFormat().open(MemoryStorage.sparseOf("img", file),
                        OpenContext.readOnly(img))) {
                    d.read(ByteBuffer.wrap(guest), 0);
                } catch (Exception e) {
                    fail("crash state " + prefix + "/" + fate + " does not open or read: " + e);
                }
                for (int i = 0; i < guest.length; i++) {
                    if (guest[i] != guestBefore[i] && !writtenThere(writes, i, guest[i])) {
                        fail("crash state " + prefix + "/" + fate + ": guest byte " + i + " is " + guest[i]
                                + ", neither what it was (" + guestBefore[i] + ") nor what a write put there");
                    }
                }
                states++;
                if ((prefix + fate.ordinal()) % 9 == 0) {
                    Path f = dir.resolve("state.vhdx");
                    Files.write(f, file);
                    Qemu.Result check = Qemu.check(f, "vhdx");
                    assertEquals(0, check.exitCode(), "qemu-img check of crash state " + prefix + "/" + fate + ": "
                            + check.out() + check.err());
                    checkedByQemu++;
                }
            }
        }
        System.out.printf("crash test vhdx writes: %d logged operations, %d crash states, %d checked by qemu-img%n",
                sim.log.size(), states, checkedByQemu);
    }

    private static boolean writtenThere(List<W> writes, long at, byte value) {
        for (W w : writes) {
            if (at >= w.offset() && at < w.offset() + w.length() && value == w.value()) {
                return true;
            }
        }
        return false;
    }

    /**
     * Each write into the BAT region that names a block past the original
     * end of the file comes after a sync that follows every data write into
     * that block.
     */
    private static void assertBatWritesFollowTheirData(List<CrashSim.Op> log, long batOffset, long originalLength) {
        int newEntries = 0;
        for (int i = 0; i < log.size(); i++) {
            if (!(log.get(i) instanceof CrashSim.Write w) || w.offset() + w.data().length <= batOffset
                    || w.offset() >= batOffset + MIB) {
                continue;
            }
            ByteBuffer b = ByteBuffer.wrap(w.data()).order(ByteOrder.LITTLE_ENDIAN);
            for (int at = (int) ((8 - (w.offset() - batOffset) % 8) % 8); at + 8 <= w.data().length; at += 8) {
                long entry = b.getLong(at);
                long block = entry & 0xFFFFFFFFFFF00000L;
                if ((entry & 7) != 6 || block < originalLength) {
                    continue;
                }
                newEntries++;
                int lastSync = -1;
                int lastData = -1;
                for (int k = 0; k < i; k++) {
                    if (log.get(k) instanceof CrashSim.Sync) {
                        lastSync = k;
                    } else if (log.get(k) instanceof CrashSim.Write d && d.offset() < block + MIB
                            && d.offset() + d.data().length > block) {
                        lastData = k;
                    }
                }
                assertTrue(lastData >= 0, "the block at " + block + " named by the BAT was written");
                assertTrue(lastSync > lastData, "the BAT names the block at " + block + " (operation " + i
                        + ") only after a sync (last " + lastSync + ") that follows its data (last " + lastData + ")");
            }
        }
        assertTrue(newEntries >= 4, "new blocks were named by BAT writes: " + newEntries);
    }
}
