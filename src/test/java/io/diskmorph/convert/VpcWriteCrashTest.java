package io.diskmorph.convert;

import io.diskmorph.format.vpc.VpcFormat;
import io.diskmorph.image.CheckReport;
import io.diskmorph.image.DiskImage;
import io.diskmorph.image.OpenContext;
import io.diskmorph.image.RepairMode;
import io.diskmorph.storage.MemoryStorage;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * Dynamic VHD guest writes crashed at every logged operation ({@link
 * CrashSim}: unsynced writes dropped, kept, reversed, randomly kept, the
 * last one torn): every crash state opens, diskmorph's check finds no
 * corruption (a footer ends the file, both footers agree, no block over
 * another or past the end), every guest byte is what it was or what one of
 * the session's writes put there, and qemu-img reads a sample the same way.
 */
class VpcWriteCrashTest {
    private static final int MIB = 1 << 20;

    @TempDir
    Path dir;

    private record W(long offset, int length, byte value) {
    }

    @Test
    void aCrashAtAnyWriteLeavesOldOrNewDataAndASoundImage() throws Exception {
        Path img = dir.resolve("w.vhd");
        long size = 8L * MIB;
        Qemu.create(img, "vpc", String.valueOf(size), "force_size=on");
        Qemu.io(img, "vpc", "write -P 0x11 0 1M", "write -P 0x12 4M 64k");
        byte[] fileBefore = Files.readAllBytes(img);
        byte[] guestBefore = new byte[(int) size];
        try (DiskImage d = new VpcFormat().open(MemoryStorage.of("img", fileBefore), OpenContext.readOnly(img))) {
            d.read(ByteBuffer.wrap(guestBefore), 0);
        }
        // new blocks (1, 3), a partial write into an allocated one (0), one across two new blocks (6, 7)
        List<W> writes = List.of(new W(2L * MIB + 4096, 8192, (byte) 0x21), new W(100 * 1024, 4096, (byte) 0x22),
                new W(6L * MIB, MIB, (byte) 0x23), new W(7L * MIB + 1000, 3000, (byte) 0x24),
                new W(4L * MIB + 512, 512, (byte) 0x25), new W(6L * MIB - 4096, 8192, (byte) 0x26));
        CrashSim sim = new CrashSim(Map.of("img", fileBefore));
        try (DiskImage d = new VpcFormat().open(sim.file("img"), new OpenContext(img, false, null, false))) {
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

        int states = 0;
        int checkedByQemu = 0;
        for (int prefix = 0; prefix <= sim.log.size(); prefix++) {
            for (CrashSim.FileFate fate : CrashSim.FileFate.values()) {
                byte[] file = sim.crashState(prefix, fate, true, prefix * 31L + fate.ordinal()).get("img");
                byte[] guest = new byte[(int) size];
                String where = "crash state " + prefix + "/" + sim.log.size() + " " + fate;
                try (DiskImage d = new VpcFormat().open(MemoryStorage.of("img", file), OpenContext.readOnly(img))) {
                    d.read(ByteBuffer.wrap(guest), 0);
                    CheckReport r = d.check(RepairMode.NONE);
                    assertEquals(0, r.corruptions, where + ": " + r.messages);
                } catch (Exception e) {
                    fail(where + " does not open, read or check: " + e);
                }
                for (int i = 0; i < guest.length; i++) {
                    if (guest[i] != guestBefore[i] && !writtenThere(writes, i, guest[i])) {
                        fail(where + ": guest byte " + i + " is " + guest[i] + ", neither what it was ("
                                + guestBefore[i] + ") nor what a write put there");
                    }
                }
                states++;
                if ((prefix + fate.ordinal()) % 7 == 0) {
                    Path f = dir.resolve("state.vhd");
                    Path ref = dir.resolve("state.raw");
                    Files.write(f, file);
                    Files.write(ref, guest);
                    assertEquals(0, Qemu.img("compare", "-f", "vpc", "-F", "raw", f, ref).exitCode(),
                            where + ": qemu-img reads what diskmorph reads");
                    checkedByQemu++;
                }
            }
        }
        System.out.printf("crash test vpc writes: %d logged operations, %d crash states, %d checked by qemu-img%n",
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
}
