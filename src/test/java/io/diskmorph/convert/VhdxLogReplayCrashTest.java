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
import java.nio.file.StandardCopyOption;
import java.util.Arrays;
import java.util.Map;
import java.util.zip.CRC32C;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The VHDX log replay ([MS-VHDX] 2.3.3, done by a writable open) crashed at
 * every logged operation ({@link CrashSim}): each crash state reads, read
 * only (through the log if it is still active), what qemu's own replay
 * gives; opened for writing again it replays to the same content, and a
 * sample is checked clean by qemu-img after that.
 */
class VhdxLogReplayCrashTest {
    @TempDir
    Path dir;

    @Test
    void aCrashedReplayReplaysAgain() throws Exception {
        Path img = dir.resolve("log.vhdx");
        long size = 4L << 20;
        Qemu.create(img, "vhdx", String.valueOf(size), "block_size=1M");
        Qemu.run("sh", "-c", "qemu-io -f vhdx -c 'write -P 0x11 0 4k' -c 'write -P 0x22 2M 4k' -c 'sigraise 9' "
                + img + " >/dev/null 2>&1; true");
        // the headers get the log GUID of the entry qemu left, as a host that lost power leaves them
        byte[] file = Files.readAllBytes(img);
        ByteBuffer b = ByteBuffer.wrap(file).order(ByteOrder.LITTLE_ENDIAN);
        long log = b.getLong(64 * 1024 + 72);
        assertEquals(0x65676f6c, b.getInt((int) log), "qemu left a log entry");
        for (int h : new int[]{64 * 1024, 128 * 1024}) {
            System.arraycopy(file, (int) log + 32, file, h + 48, 16);
            b.putInt(h + 4, 0);
            CRC32C c = new CRC32C();
            c.update(file, h, 4096);
            b.putInt(h + 4, (int) c.getValue());
        }
        Files.write(img, file);
        Path copy = dir.resolve("qemu-replayed.vhdx");
        Files.copy(img, copy, StandardCopyOption.REPLACE_EXISTING);
        assertEquals(0, Qemu.img("check", "-r", "all", copy).exitCode());
        Path raw = dir.resolve("expected.raw");
        Qemu.toRaw(copy, "vhdx", raw);
        byte[] expected = Files.readAllBytes(raw);
        assertEquals(0x11, expected[0]);

        CrashSim sim = new CrashSim(Map.of("img", file));
        try (DiskImage d = new VhdxFormat().open(sim.file("img"), new OpenContext(img, false, null, false))) {
            assertEquals(size, d.virtualSize());
        }
        assertTrue(sim.log.size() >= 4, "the replay was recorded: " + sim.log.size());

        int states = 0;
        int checked = 0;
        for (int prefix = 0; prefix <= sim.log.size(); prefix++) {
            for (CrashSim.FileFate fate : CrashSim.FileFate.values()) {
                byte[] state = sim.crashState(prefix, fate, true, prefix * 17L + fate.ordinal()).get("img");
                String name = "crash state " + prefix + "/" + fate;
                assertArrayEquals(expected, guest(state, true, size), name + ", read only");
                MemoryStorage replayed = MemoryStorage.sparseOf("img", state);
                byte[] guest = new byte[(int) size];
                try (DiskImage d = new VhdxFormat().open(replayed, new OpenContext(img, false, null, false))) {
                    d.read(ByteBuffer.wrap(guest), 0);
                }
                assertArrayEquals(expected, guest, name + ", replayed again");
                states++;
                if ((prefix + fate.ordinal()) % 4 == 0) {
                    Path f = dir.resolve("state.vhdx");
                    Files.write(f, replayed.toByteArray());
                    Qemu.Result check = Qemu.check(f, "vhdx");
                    assertEquals(0, check.exitCode(), name + ": " + check.out() + check.err());
                    checked++;
                }
            }
        }
        System.out.printf("crash test vhdx log replay: %d logged operations, %d crash states, %d checked by "
                + "qemu-img%n", sim.log.size(), states, checked);
        assertTrue(Arrays.equals(expected, guest(sim.crashState(sim.log.size(), CrashSim.FileFate.NONE, true, 0)
                .get("img"), true, size)));
    }

    private byte[] guest(byte[] file, boolean readOnly, long size) throws Exception {
        byte[] guest = new byte[(int) size];
        try (DiskImage d = new VhdxFormat().open(MemoryStorage.sparseOf("img", file),
                new OpenContext(dir.resolve("x.vhdx"), readOnly, null, false))) {
            d.read(ByteBuffer.wrap(guest), 0);
        }
        return guest;
    }
}
