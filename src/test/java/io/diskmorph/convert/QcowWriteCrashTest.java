package io.diskmorph.convert;

import io.diskmorph.format.qcow.QcowFormat;
import io.diskmorph.image.CheckReport;
import io.diskmorph.image.DiskImage;
import io.diskmorph.image.OpenContext;
import io.diskmorph.image.RepairMode;
import io.diskmorph.storage.MemoryStorage;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * qcow guest writes crashed at every logged operation ({@link CrashSim}):
 * new L2 tables and clusters are appended, and an entry must never reach
 * the disk before what it names. Checked in the operation log (every L1
 * or L2 write naming a table or cluster past the original end comes after
 * a sync that follows that table's or cluster's last write) and in every
 * crash state (unsynced writes dropped, kept, reversed, randomly kept, the
 * last one torn): the image opens, diskmorph's check finds no corruption,
 * and every guest byte is what it was or what one of the session's writes
 * put there; a sample of states is read by qemu-img too.
 */
class QcowWriteCrashTest {
    private static final int MIB = 1 << 20;

    @TempDir
    Path dir;

    private record W(long offset, int length, byte value) {
    }

    @Test
    void aCrashAtAnyWriteLeavesOldOrNewDataAndASoundImage() throws Exception {
        Path img = dir.resolve("w.qcow");
        long size = 6L * MIB; // three L2 tables of 2 MiB
        Qemu.create(img, "qcow", String.valueOf(size));
        Qemu.io(img, "qcow", "write -P 0x11 0 64k", "write -P 0x12 3M 8k");
        Path raw = dir.resolve("before.raw");
        Qemu.toRaw(img, "qcow", raw);
        byte[] guestBefore = Files.readAllBytes(raw);
        byte[] fileBefore = Files.readAllBytes(img);

        List<W> writes = List.of(new W(100 * 1024, 8192, (byte) 0x21), new W(4096, 4096, (byte) 0x22),
                new W(2L * MIB - 2048, 6000, (byte) 0x23), new W(3L * MIB + 1000, 100, (byte) 0x24),
                new W(5L * MIB, 64 * 1024, (byte) 0x25), new W(MIB + 512, 3000, (byte) 0x26));
        CrashSim sim = new CrashSim(Map.of("img", fileBefore));
        try (DiskImage d = new QcowFormat().open(sim.file("img"), new OpenContext(img, false, null, false))) {
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
        assertEntriesFollowWhatTheyName(sim.log, fileBefore.length);

        int states = 0;
        int readByQemu = 0;
        for (int prefix = 0; prefix <= sim.log.size(); prefix++) {
            for (CrashSim.FileFate fate : CrashSim.FileFate.values()) {
                byte[] file = sim.crashState(prefix, fate, true, prefix * 31L + fate.ordinal()).get("img");
                byte[] guest = new byte[(int) size];
                String where = "crash state " + prefix + "/" + fate;
                try (DiskImage d = new QcowFormat().open(MemoryStorage.sparseOf("img", file),
                        OpenContext.readOnly(img))) {
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
                    Path f = dir.resolve("state.qcow");
                    Path ours = dir.resolve("ours.raw");
                    Files.write(f, file);
                    Files.write(ours, guest);
                    assertEquals(0, Qemu.img("compare", "-f", "qcow", "-F", "raw", f, ours).exitCode(),
                            "qemu-img reads " + where + " as diskmorph does");
                    readByQemu++;
                }
            }
        }
        System.out.printf("crash test qcow writes: %d logged operations, %d crash states, %d read by qemu-img%n",
                sim.log.size(), states, readByQemu);
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
     * Every 8-byte aligned value written that names a place past the
     * original end (a new L2 table in the L1, a new cluster in an L2 table)
     * comes after a sync that follows the last write into that place.
     */
    private static void assertEntriesFollowWhatTheyName(List<CrashSim.Op> log, long originalLength) {
        int entries = 0;
        for (int i = 0; i < log.size(); i++) {
            if (!(log.get(i) instanceof CrashSim.Write w) || w.data().length % 8 != 0 || w.offset() % 8 != 0
                    || w.data().length > 64 * 1024) {
                continue;
            }
            ByteBuffer b = ByteBuffer.wrap(w.data()).order(ByteOrder.BIG_ENDIAN);
            for (int at = 0; at + 8 <= w.data().length; at += 8) {
                long named = b.getLong(at);
                // a table or cluster offset: 4 KiB aligned, past the original end, inside what the session wrote
                if (named < originalLength || named % 4096 != 0 || named > 64L * MIB) {
                    continue;
                }
                int lastSync = -1;
                int lastData = -1;
                for (int k = 0; k < i; k++) {
                    if (log.get(k) instanceof CrashSim.Sync) {
                        lastSync = k;
                    } else if (log.get(k) instanceof CrashSim.Write d && d.offset() < named + 4096
                            && d.offset() + d.data().length > named) {
                        lastData = k;
                    }
                }
                if (lastData < 0) {
                    continue; // guest data that happens to look like an offset
                }
                entries++;
                assertTrue(lastSync > lastData, "operation " + i + " names " + named + " only after a sync (last "
                        + lastSync + ") that follows its last write (" + lastData + ")");
            }
        }
        assertTrue(entries >= 5, "new tables and clusters were named: " + entries);
    }
}
