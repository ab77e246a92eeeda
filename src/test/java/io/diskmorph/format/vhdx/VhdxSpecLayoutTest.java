package io.diskmorph.format.vhdx;

import com.fasterxml.jackson.databind.JsonNode;
import io.diskmorph.testing.Dm;
import io.diskmorph.testing.Oracles;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.zip.CRC32C;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A VHDX written here from [MS-VHDX] alone, laid out as Hyper-V lays out a
 * dynamic disk rather than as qemu does: regions and metadata items marked
 * required, the metadata region before the BAT, payload blocks in write
 * order (not guest order) from 4 MiB on, blocks that were never written
 * NOT_PRESENT, and the other states (ZERO, UNMAPPED); 512 and 4096-byte
 * logical sectors. diskmorph reads the bytes the test put there, qemu-img
 * reads the same (512-byte sectors: qemu 7.2 opens no others), vhdiinfo
 * agrees on the geometry, and the image
 * converts in place to qcow2 with every payload byte kept, then rolls back.
 */
class VhdxSpecLayoutTest {
    static final long MIB = 1L << 20;
    static final long BLOCK = 8 * MIB;
    /** Four blocks and half of a fifth. */
    static final long SIZE = 4 * BLOCK + BLOCK / 2;

    @TempDir
    Path dir;

    private static void guid(ByteBuffer b, int at, String text) {
        b.put(at, VhdxDifferencingTest.guidBytes(text));
    }

    private static void crc(ByteBuffer b) {
        b.putInt(4, 0);
        CRC32C c = new CRC32C();
        c.update(b.array(), 0, b.capacity());
        b.putInt(4, (int) c.getValue());
    }

    @ParameterizedTest(name = "logical sector {0}")
    @ValueSource(ints = {512, 4096})
    void hyperVLayout(int logicalSector) throws Exception {
        Path img = dir.resolve("hv.vhdx");
        byte[] guest = new byte[(int) SIZE];
        try (FileChannel f = FileChannel.open(img, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
            ByteBuffer id = ByteBuffer.allocate(8 + 512).order(ByteOrder.LITTLE_ENDIAN);
            id.put("vhdxfile".getBytes()).put("Microsoft Windows 10.0.19045.0".getBytes(
                    java.nio.charset.StandardCharsets.UTF_16LE));
            f.write(id.flip(), 0);
            for (int i = 0; i < 2; i++) {
                ByteBuffer h = ByteBuffer.allocate(4096).order(ByteOrder.LITTLE_ENDIAN);
                h.putInt(0, 0x64616568).putLong(8, 10 + i);
                guid(h, 16, "11111111-2222-3333-4444-55555555555" + i);
                guid(h, 32, "66666666-7777-8888-9999-aaaaaaaaaaaa");
                h.putShort(66, (short) 1).putInt(68, (int) MIB).putLong(72, MIB);
                crc(h);
                f.write(h, 64 * 1024 * (1 + i));
            }
            ByteBuffer rt = ByteBuffer.allocate(64 * 1024).order(ByteOrder.LITTLE_ENDIAN);
            rt.putInt(0, 0x69676572).putInt(8, 2);
            guid(rt, 16, VhdxFiles.METADATA_GUID);
            rt.putLong(32, 2 * MIB).putInt(40, (int) MIB).putInt(44, 1);
            guid(rt, 48, VhdxFiles.BAT_GUID);
            rt.putLong(64, 3 * MIB).putInt(72, (int) MIB).putInt(76, 1);
            crc(rt);
            f.write(rt.duplicate(), 192 * 1024);
            f.write(rt.duplicate(), 256 * 1024);

            ByteBuffer md = ByteBuffer.allocate((int) MIB).order(ByteOrder.LITTLE_ENDIAN);
            md.putLong(0, 0x617461646174656dL).putShort(10, (short) 5);
            String[] items = {VhdxFiles.FILE_PARAMETERS_GUID, VhdxFiles.VIRTUAL_SIZE_GUID,
                    "beca12ab-b2e6-4523-93ef-c309e000c746", VhdxFiles.LOGICAL_SECTOR_GUID,
                    "cda348c7-445d-4471-9cc9-e9885251c556"};
            int[] lengths = {8, 8, 16, 4, 4};
            int[] flags = {4, 6, 6, 6, 6}; // isRequired, isVirtualDisk as Hyper-V marks them
            int at = 64 * 1024;
            for (int i = 0; i < items.length; i++) {
                guid(md, 32 + 32 * i, items[i]);
                md.putInt(48 + 32 * i, at).putInt(52 + 32 * i, lengths[i]).putInt(56 + 32 * i, flags[i]);
                switch (i) {
                    case 0 -> md.putInt(at, (int) BLOCK).putInt(at + 4, 0);
                    case 1 -> md.putLong(at, SIZE);
                    case 2 -> guid(md, at, "0f0e0d0c-0b0a-0908-0706-050403020100");
                    case 3 -> md.putInt(at, logicalSector);
                    default -> md.putInt(at, 4096);
                }
                at += 8 * 1024;
            }
            f.write(md, 2 * MIB);

            // blocks in write order: guest block 2 first (at 4 MiB), then block 0 (at 12 MiB)
            long[] bat = new long[5];       // block 1 never written: NOT_PRESENT (0)
            bat[3] = 2;                     // ZERO
            bat[4] = 3;                     // UNMAPPED (the half block at the end)
            byte[] data = new byte[(int) BLOCK];
            for (long[] b : new long[][]{{2, 4}, {0, 12}}) {
                Arrays.fill(data, (byte) (0x40 + b[0]));
                Arrays.fill(data, (int) MIB, (int) (3 * MIB), (byte) 0); // written zeros inside a block
                f.write(ByteBuffer.wrap(data), b[1] * MIB);
                System.arraycopy(data, 0, guest, (int) (b[0] * BLOCK), (int) BLOCK);
                bat[(int) b[0]] = (b[1] * MIB) | 6;
            }
            ByteBuffer bb = ByteBuffer.allocate(8 * bat.length).order(ByteOrder.LITTLE_ENDIAN);
            bb.asLongBuffer().put(bat);
            f.write(bb, 3 * MIB);
        }
        Path raw = dir.resolve("ours.raw");
        Dm.run("convert", "-O", "raw", img, raw).ok();
        assertArrayEquals(guest, Files.readAllBytes(raw), "diskmorph reads what was written");
        if (logicalSector == 512) { // qemu 7.2 opens no other ("Operation not supported")
            Path qraw = dir.resolve("qemu.raw");
            Qemu.toRaw(img, "vhdx", qraw);
            assertArrayEquals(guest, Files.readAllBytes(qraw), "qemu-img reads the same");
            assertEquals(0, Qemu.check(img, "vhdx").exitCode());
        }
        VhdxReadTest.assertVhdiinfoAgrees(img, SIZE, "Dynamic", logicalSector);
        VhdxReadTest.assertHostOffsetsAreTheBatsOf(img, BLOCK, logicalSector);
        assertEquals(0, Dm.run("check", img).exitCode());

        Path original = dir.resolve("original.vhdx");
        Files.copy(img, original);
        JsonNode plan = Dm.run("convert", "--in-place", "--keep-rollback", "--output=json", "-O", "qcow2", img)
                .ok().json();
        assertEquals(0, plan.get("moved-bytes").asLong(), plan.toString());
        assertEquals(2 * BLOCK, plan.get("kept-bytes").asLong(), "both blocks, written zeros too: " + plan);
        Oracles.assertCheckClean(img, "qcow2");
        Path after = dir.resolve("after.raw");
        Qemu.toRaw(img, "qcow2", after);
        assertArrayEquals(guest, Files.readAllBytes(after), "the qcow2 holds the guest");
        Dm.run("rollback", img).ok();
        assertArrayEquals(Files.readAllBytes(original), Files.readAllBytes(img), "rollback");
        assertTrue(Files.size(img) > 0);
    }
}
