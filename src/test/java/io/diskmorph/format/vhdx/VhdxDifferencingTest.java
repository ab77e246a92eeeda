package io.diskmorph.format.vhdx;

import io.diskmorph.image.ExitCodes;
import io.diskmorph.testing.Dm;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Differencing VHDX images, which qemu 7.2 can neither make nor open: a
 * qemu-made image is turned into one here ([MS-VHDX]: the has-parent flag, a
 * parent locator item with parent_linkage and relative_path, a sector
 * bitmap block, fully and partially present blocks), over a qemu-made
 * parent. diskmorph reads each sector from the right file (the expected
 * bytes are computed here from what was written), reports the parent as a
 * backing file, refuses a parent whose data write GUID changed, and refuses
 * in-place conversion (the data lives in two files).
 */
class VhdxDifferencingTest {
    static final int MIB = 1 << 20;
    static final int SIZE = 8 * MIB;

    @TempDir
    Path dir;
    Path parent;
    Path child;
    byte[] expected;

    @BeforeEach
    void images() throws Exception {
        parent = dir.resolve("parent.vhdx");
        Qemu.create(parent, "vhdx", String.valueOf(SIZE), "block_size=1M");
        Qemu.io(parent, "vhdx", "write -P 0x66 0 " + SIZE);
        child = dir.resolve("child.vhdx");
        Qemu.create(child, "vhdx", String.valueOf(SIZE), "block_size=1M,block_state_zero=off");
        String linkage = "{" + VhdxFiles.guid(VhdxFiles.read(parent, currentHeader(parent) + 32, 16), 0) + "}";
        makeDifferencing(child, Map.of("parent_linkage", linkage, "relative_path", ".\\parent.vhdx"));

        expected = new byte[SIZE];
        Arrays.fill(expected, (byte) 0x66);
        Arrays.fill(expected, 2 * MIB, 3 * MIB, (byte) 0x77);
        Arrays.fill(expected, 4 * MIB + 100 * 512, 4 * MIB + 300 * 512, (byte) 0x88);
        Arrays.fill(expected, 5 * MIB, 6 * MIB, (byte) 0);
    }

    static long currentHeader(Path f) throws Exception {
        long s1 = VhdxFiles.read(f, VhdxFiles.HEADER1 + 8, 8).getLong(0);
        long s2 = VhdxFiles.read(f, VhdxFiles.HEADER2 + 8, 8).getLong(0);
        return s1 > s2 ? VhdxFiles.HEADER1 : VhdxFiles.HEADER2;
    }

    /**
     * Block 2 fully present (0x77), block 4 partially present (sectors
     * 100-299 here, 0x88; the rest from the parent), block 5 zero, the rest
     * not present (the parent's).
     */
    static void makeDifferencing(Path f, Map<String, String> locator) throws Exception {
        long params = VhdxFiles.item(f, VhdxFiles.FILE_PARAMETERS_GUID);
        VhdxFiles.putInt(f, params + 4, VhdxFiles.read(f, params + 4, 4).getInt(0) | 2);
        long meta = VhdxFiles.region(f, VhdxFiles.METADATA_GUID);
        int n = VhdxFiles.read(f, meta + 10, 2).getShort(0);
        ByteBuffer loc = locator(locator);
        long itemAt = 512 * 1024;
        ByteBuffer entry = ByteBuffer.allocate(32).order(ByteOrder.LITTLE_ENDIAN);
        entry.put(guidBytes(VhdxFiles.PARENT_LOCATOR_GUID)).putInt((int) itemAt).putInt(loc.capacity()).putInt(4);
        VhdxFiles.write(f, meta + 32 + 32L * n, entry.clear());
        VhdxFiles.write(f, meta + 10, ByteBuffer.allocate(2).order(ByteOrder.LITTLE_ENDIAN).putShort(0, (short) (n + 1)));
        VhdxFiles.write(f, meta + itemAt, loc);

        long end = Math.ceilDiv(Files.size(f), MIB) * (long) MIB;
        ByteBuffer bitmap = ByteBuffer.allocate(MIB);
        for (int s = 100; s < 300; s++) {
            int bit = 4 * (MIB / 512) + s; // block 4 of the chunk
            bitmap.put(bit / 8, (byte) (bitmap.get(bit / 8) | 1 << (bit % 8)));
        }
        VhdxFiles.write(f, end, bitmap);
        byte[] full = new byte[MIB];
        Arrays.fill(full, (byte) 0x77);
        VhdxFiles.write(f, end + MIB, ByteBuffer.wrap(full));
        Arrays.fill(full, (byte) 0x88);
        VhdxFiles.write(f, end + 2L * MIB, ByteBuffer.wrap(full));
        long chunkRatio = (8L << 20) * 512 / MIB;
        VhdxFiles.setBatEntry(f, chunkRatio, end | 6);
        VhdxFiles.setBatEntry(f, 2, (end + MIB) | 6);
        VhdxFiles.setBatEntry(f, 4, (end + 2L * MIB) | 7);
        VhdxFiles.setBatEntry(f, 5, 2);
    }

    static ByteBuffer locator(Map<String, String> kv) {
        List<Map.Entry<String, String>> entries = List.copyOf(new LinkedHashMap<>(kv).entrySet());
        int strings = 20 + 12 * entries.size();
        int total = strings;
        for (Map.Entry<String, String> e : entries) {
            total += 2 * (e.getKey().length() + e.getValue().length());
        }
        ByteBuffer b = ByteBuffer.allocate(total).order(ByteOrder.LITTLE_ENDIAN);
        b.put(guidBytes("b04aefb7-d19e-4a81-b789-25b8e9445913")).putShort((short) 0).putShort((short) entries.size());
        int at = strings;
        for (int i = 0; i < entries.size(); i++) {
            byte[] k = entries.get(i).getKey().getBytes(StandardCharsets.UTF_16LE);
            byte[] v = entries.get(i).getValue().getBytes(StandardCharsets.UTF_16LE);
            b.putInt(20 + 12 * i, at).putInt(24 + 12 * i, at + k.length).putShort(28 + 12 * i, (short) k.length)
                    .putShort(30 + 12 * i, (short) v.length);
            b.put(at, k).put(at + k.length, v);
            at += k.length + v.length;
        }
        return b.clear();
    }

    static byte[] guidBytes(String text) {
        String h = text.replace("-", "");
        ByteBuffer b = ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN);
        b.putInt((int) Long.parseLong(h.substring(0, 8), 16)).putShort((short) Integer.parseInt(h.substring(8, 12), 16))
                .putShort((short) Integer.parseInt(h.substring(12, 16), 16));
        for (int i = 16; i < 32; i += 2) {
            b.put((byte) Integer.parseInt(h.substring(i, i + 2), 16));
        }
        return b.array();
    }

    @Test
    void readsEachSectorFromTheRightFile() throws Exception {
        Path out = dir.resolve("out.raw");
        Dm.run("convert", "-O", "raw", child, out).ok();
        byte[] got = Files.readAllBytes(out);
        assertEquals(-1, Arrays.mismatch(expected, got), "first difference at " + Arrays.mismatch(expected, got));
        var info = Dm.run("info", "--output=json", child).ok().json();
        assertEquals("parent.vhdx", info.get("backing-filename").asText());
        assertEquals("vhdx", info.get("backing-filename-format").asText());
        List<Qemu.MapLine> map = Dm.map(child, "vhdx");
        assertTrue(map.stream().anyMatch(l -> l.depth() == 1 && l.data()), "the parent answers some runs: " + map);
        assertTrue(map.stream().anyMatch(l -> l.depth() == 0 && l.data() && l.start() == 4 * MIB + 100 * 512
                && l.length() == 200 * 512), "the sectors the bitmap marks: " + map);
        assertEquals(0, Dm.run("check", child).exitCode());
        Qemu.Result vhdi = Qemu.run("vhdiinfo", child.toString());
        assertTrue(vhdi.out().contains("Differential") || vhdi.out().contains("Differencing"), vhdi.out());
        Path copy = dir.resolve("copy.qcow2");
        Dm.run("convert", "-O", "qcow2", child, copy).ok();
        Path back = dir.resolve("back.raw");
        Qemu.toRaw(copy, "qcow2", back);
        assertArrayEquals(expected, Files.readAllBytes(back), "a copy holds the merged disk");
    }

    @Test
    void inPlaceIsRefused() throws Exception {
        byte[] before = Files.readAllBytes(child);
        Dm.Result r = Dm.run("convert", "--in-place", "-O", "qcow2", child);
        assertEquals(ExitCodes.UNSUPPORTED, r.exitCode(), r.err());
        assertTrue(r.oneLineError().contains("differencing VHDX"), r.err());
        assertArrayEquals(before, Files.readAllBytes(child));
        assertTrue(!Files.exists(dir.resolve("child.vhdx.dmjournal")), "no journal left");
    }

    /** A parent written since the child was made (another data write GUID) is refused, not read. */
    @Test
    void changedParentIsRefused() throws Exception {
        long h = currentHeader(parent);
        VhdxFiles.putInt(parent, h + 32, 0xdeadbeef);
        VhdxFiles.fixHeaders(parent);
        Dm.Result r = Dm.run("convert", "-O", "raw", child, dir.resolve("o.raw"));
        assertEquals(ExitCodes.CORRUPT, r.exitCode(), r.err());
        assertTrue(r.oneLineError().contains("the parent changed"), r.err());
    }

    /** --no-backing: the parent is not opened; what the child does not hold is unallocated. */
    @Test
    void noBacking() throws Exception {
        Files.delete(parent); // not even looked for
        List<Qemu.MapLine> map = Qemu.MapLine.parse(Dm.run("map", "--no-backing", "--output=json", child).ok()
                .json());
        assertTrue(map.stream().allMatch(l -> l.depth() == 0), map.toString());
        assertTrue(map.stream().anyMatch(l -> !l.present() && l.start() == 0), "block 0 is the parent's: " + map);
        assertTrue(map.stream().anyMatch(l -> l.data() && l.start() == 2 * MIB), "block 2 is here: " + map);
        assertTrue(map.stream().anyMatch(l -> l.data() && l.start() == 4 * MIB + 100 * 512), "the bitmap's: " + map);
    }

    /** A missing parent is named, not read as zeros. */
    @Test
    void missingParent() throws Exception {
        Files.delete(parent);
        Dm.Result r = Dm.run("convert", "-O", "raw", child, dir.resolve("o.raw"));
        assertTrue(r.exitCode() != 0, r.out());
        assertTrue(r.oneLineError().contains("parent.vhdx"), r.err());
    }
}
