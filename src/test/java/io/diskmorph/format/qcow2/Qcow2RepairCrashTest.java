package io.diskmorph.format.qcow2;

import com.fasterxml.jackson.databind.JsonNode;
import io.diskmorph.image.CheckReport;
import io.diskmorph.image.DiskImage;
import io.diskmorph.image.OpenContext;
import io.diskmorph.image.RepairMode;
import io.diskmorph.storage.MemoryStorage;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;

import static io.diskmorph.format.qcow2.Qcow2Files.dataCluster;
import static io.diskmorph.format.qcow2.Qcow2Files.header;
import static io.diskmorph.format.qcow2.Qcow2Files.l1Entry;
import static io.diskmorph.format.qcow2.Qcow2Files.l2Entry;
import static io.diskmorph.format.qcow2.Qcow2Files.putU32;
import static io.diskmorph.format.qcow2.Qcow2Files.putU64;
import static io.diskmorph.format.qcow2.Qcow2Files.setRefcount;
import static io.diskmorph.format.qcow2.Qcow2Files.u64;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A crash at any point of {@code check -r all} may leak, never corrupt
 * more: every sync point of a recorded repair (and torn versions of the
 * batch after it) leaves an image that qemu-img check finds no more
 * corrupt than before the repair, with the guest content of before.
 */
class Qcow2RepairCrashTest {
    private static final long COPIED = L2Entry.COPIED;

    @TempDir
    Path dir;

    @Test
    void refcountRebuild() throws Exception {
        assertRepairCrashSafe(damaged("rebuild", f -> {
            setRefcount(f, dataCluster(f, 0), 0);
            putU64(f, l2Entry(f, 64 << 10), u64(f, l2Entry(f, 64 << 10)) & ~COPIED);
        }));
    }

    @Test
    void leaksCorruptionsAndCopiedFlags() throws Exception {
        assertRepairCrashSafe(damaged("fix", f -> {
            // a cluster used twice with refcount 1, a leak, a wrong L1 COPIED flag
            putU64(f, l2Entry(f, 3 << 20), u64(f, l2Entry(f, 0)));
            setRefcount(f, dataCluster(f, 64 << 10), 2);
            putU64(f, l1Entry(f, 0), u64(f, l1Entry(f, 0)) & ~COPIED);
        }));
    }

    @Test
    void misalignedZeroClusterAndDirtyBit() throws Exception {
        assertRepairCrashSafe(damaged("zero", f -> {
            putU64(f, l2Entry(f, 3 << 20), COPIED | (Files.size(f) - 65536 + 512) | L2Entry.ZERO_FLAG);
            putU64(f, 72, u64(f, 72) | Qcow2Header.INCOMPAT_DIRTY);
        }));
    }

    @Test
    void snapshotTableRewriteAndRefcountBlockOutsideTheImage() throws Exception {
        assertRepairCrashSafe(damaged("snap", f -> {
            Qemu.img("snapshot", "-c", "s1", f).ok();
            Qemu.io(f, "qcow2", "write -P 5 0 64k");
            putU32(f, header(f).snapshotsOffset + 36, 8);
        }));
        assertRepairCrashSafe(damaged("outside", f -> putU64(f, header(f).refcountTableOffset + 8, 4 << 20)));
    }

    interface Damage {
        void apply(Path f) throws IOException;
    }

    private Path damaged(String name, Damage d) throws IOException {
        Path f = dir.resolve(name + ".qcow2");
        Qemu.create(f, "qcow2", "16M");
        Qemu.io(f, "qcow2", "write -P 1 0 128k", "write -c -P 2 1M 64k", "write -z 2M 64k");
        d.apply(f);
        return f;
    }

    private static boolean toRaw(Path image, Path raw) {
        return Qemu.img("convert", "-f", "qcow2", "-O", "raw", image, raw).exitCode() == 0;
    }

    private void assertRepairCrashSafe(Path f) throws Exception {
        byte[] initial = Files.readAllBytes(f);
        long corruptionsBefore = Qemu.check(f, "qcow2").json().path("corruptions").asLong(0);
        Path raw = dir.resolve("before.raw");
        // an image qemu cannot read (a misaligned entry) is judged by what it reads after the repair
        boolean readable = toRaw(f, raw);
        byte[] guest = readable ? Files.readAllBytes(raw) : null;

        Qcow2CrashOrderTest.RecordingStorage rec =
                new Qcow2CrashOrderTest.RecordingStorage(MemoryStorage.of("image", initial));
        // opened for check, like the CLI's check: a dirty image is opened to be repaired
        try (DiskImage img = new Qcow2Format().open(rec, new OpenContext(null, false, null, false, true))) {
            CheckReport r = img.check(RepairMode.ALL);
            assertTrue(r.repaired, r.messages.toString());
            assertEquals(0, r.corruptions, r.messages.toString());
        }
        if (!readable) {
            Path repaired = dir.resolve("repaired.qcow2");
            Files.write(repaired, rec.memory.toByteArray());
            assertTrue(toRaw(repaired, raw));
            guest = Files.readAllBytes(raw);
        }
        List<Object[]> ops = rec.ops;
        List<Integer> syncs = new ArrayList<>();
        for (int i = 0; i < ops.size(); i++) {
            if (ops.get(i) == null) {
                syncs.add(i);
            }
        }
        syncs.add(ops.size());
        assertTrue(syncs.size() >= 2, "the repair synced");
        Random rnd = new Random(3);
        Path state = dir.resolve("state.qcow2");
        int start = 0;
        for (int s : syncs) {
            for (int torn = 0; torn < 3; torn++) {
                MemoryStorage m = MemoryStorage.of("crash", initial);
                for (int i = 0; i < s; i++) {
                    Object[] op = ops.get(i);
                    boolean lands = i < start || torn == 0 || torn == 1 && rnd.nextBoolean()
                            || torn == 2 && i >= (start + s) / 2;
                    if (op != null && lands) {
                        if (op[1] instanceof String) {
                            m.truncate((Long) op[0]);
                        } else {
                            m.write(ByteBuffer.wrap((byte[]) op[1]), (Long) op[0]);
                        }
                    }
                }
                Files.write(state, m.toByteArray());
                String where = f.getFileName() + ": crash before op " + s + "/" + ops.size() + " (torn " + torn + ")";
                Qemu.Result c = Qemu.check(state, "qcow2");
                JsonNode j = c.json();
                assertTrue(j.path("corruptions").asLong(0) <= corruptionsBefore, where + ": " + c.out() + c.err());
                assertEquals(0, j.path("check-errors").asLong(0), where + ": " + c.out());
                if (toRaw(state, raw)) {
                    assertTrue(Arrays.equals(guest, Files.readAllBytes(raw)), where + ": guest content changed");
                } else {
                    assertTrue(!readable, where + ": qemu cannot read the image any more");
                }
            }
            start = s + 1;
        }
    }
}
