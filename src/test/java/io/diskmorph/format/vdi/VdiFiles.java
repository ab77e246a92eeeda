package io.diskmorph.format.vdi;

import com.fasterxml.jackson.databind.JsonNode;
import io.diskmorph.testing.Dm;
import io.diskmorph.testing.Qemu;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * VDI test files written byte by byte from VirtualBox's layout (VDICore.h:
 * the pre-header, the 1.1 header of 0x190 bytes, the map and the data area
 * each aligned to 1 MiB, as VirtualBox 4 and later create them), independent
 * of the driver under test; and the qemu-img 7.2 oracle.
 */
final class VdiFiles {
    static final int MIB = 1 << 20;
    static final int UNALLOCATED = 0xffffffff;
    static final int DISCARDED = 0xfffffffe;

    private VdiFiles() {
    }

    /**
     * A VirtualBox-layout dynamic VDI of {@code diskSize} bytes: the map at
     * 1 MiB, the data at the next MiB boundary after it; {@code blocks}
     * gives guest block -> host block index (absent: unallocated; -2:
     * discarded); host block k holds {@code content(guest block)}.
     */
    static void virtualBox(Path file, long diskSize, Map<Long, Long> blocks, java.util.function.LongFunction<byte[]>
            content) throws IOException {
        long n = Math.ceilDiv(diskSize, MIB);
        long mapOffset = MIB;
        long dataOffset = mapOffset + Math.ceilDiv(n * 4, MIB) * MIB;
        long allocated = blocks.values().stream().filter(v -> v >= 0).count();
        try (RandomAccessFile f = new RandomAccessFile(file.toFile(), "rw")) {
            f.setLength(0);
            f.write(header(diskSize, 1, 0x190, mapOffset, dataOffset, n, allocated,
                    "<<< Oracle VM VirtualBox Disk Image >>>\n"));
            ByteBuffer map = ByteBuffer.allocate((int) (n * 4)).order(ByteOrder.LITTLE_ENDIAN);
            for (long b = 0; b < n; b++) {
                Long host = blocks.get(b);
                map.putInt(host == null ? UNALLOCATED : host == -2 ? DISCARDED : (int) (long) host);
            }
            f.seek(mapOffset);
            f.write(map.array());
            f.setLength(dataOffset);
            for (Map.Entry<Long, Long> e : blocks.entrySet()) {
                if (e.getValue() >= 0) {
                    f.seek(dataOffset + e.getValue() * MIB);
                    f.write(content.apply(e.getKey()));
                }
            }
        }
    }

    /** A 512-byte header: VirtualBox's fields, no geometry, random-looking UUIDs. */
    static byte[] header(long diskSize, int type, int headerSize, long mapOffset, long dataOffset, long blocks,
                         long allocated, String text) {
        ByteBuffer b = ByteBuffer.allocate(512).order(ByteOrder.LITTLE_ENDIAN);
        b.put(text.getBytes(StandardCharsets.US_ASCII));
        b.putInt(0x40, 0xbeda107f).putInt(0x44, 0x00010001).putInt(0x48, headerSize).putInt(0x4c, type)
                .putInt(0x154, (int) mapOffset).putInt(0x158, (int) dataOffset).putInt(0x168, 512)
                .putLong(0x170, diskSize).putInt(0x178, MIB).putInt(0x180, (int) blocks).putInt(0x184, (int) allocated);
        for (int i = 0; i < 32; i++) {
            b.put(0x188 + i, (byte) (i * 37 + 11)); // creation and modification UUIDs
        }
        return b.array();
    }

    /** A block of {@code seed}-dependent bytes. */
    static byte[] pattern(int length, long seed) {
        byte[] b = new byte[length];
        java.util.Random r = new java.util.Random(seed);
        r.nextBytes(b);
        return b;
    }

    static void putU32(Path f, long offset, long value) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt(0, (int) value);
        write(f, offset, b.array());
    }

    static void putU64(Path f, long offset, long value) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(0, value);
        write(f, offset, b.array());
    }

    static void write(Path f, long offset, byte[] bytes) throws IOException {
        try (RandomAccessFile r = new RandomAccessFile(f.toFile(), "rw")) {
            r.seek(offset);
            r.write(bytes);
        }
    }

    static long u32(Path f, long offset) throws IOException {
        try (RandomAccessFile r = new RandomAccessFile(f.toFile(), "r")) {
            byte[] b = new byte[4];
            r.seek(offset);
            r.readFully(b);
            return Integer.toUnsignedLong(ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).getInt());
        }
    }

    static String sha256(Path p) throws Exception {
        return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(Files.readAllBytes(p)));
    }

    // ---- the oracle -----------------------------------------------------------------------

    /** info (JSON and human), map (JSON and human) and guest bytes as qemu-img 7.2 gives them. */
    static void assertReadsLikeQemu(Path image, Path scratch) throws IOException {
        JsonNode ours = Dm.run("info", "--output=json", image).ok().json();
        JsonNode qemu = Qemu.img("info", "--output=json", image).ok().json();
        assertEquals(qemu, ours, "info of " + image);
        assertEquals(Qemu.img("info", image).ok().out(), Dm.run("info", image).ok().out(), "human info of " + image);
        assertEquals(Qemu.map(image, null), Dm.map(image, null), "map of " + image);
        assertEquals(Qemu.img("map", image).ok().out(), Dm.run("map", image).ok().out(), "human map of " + image);
        Path o = scratch.resolve("ours.raw");
        Path q = scratch.resolve("qemu.raw");
        Files.deleteIfExists(o);
        Files.deleteIfExists(q);
        Dm.run("convert", "-O", "raw", image, o).ok();
        Qemu.img("convert", "-O", "raw", image, q).ok();
        assertEquals(-1, Files.mismatch(o, q), "guest bytes of " + image);
    }

    /** Guest bytes of the {@code c}-sized clusters that hold data (not reported as zeros) in the map. */
    static long unitBytes(List<Qemu.MapLine> map, long c, long size) {
        java.util.TreeSet<Long> clusters = new java.util.TreeSet<>();
        for (Qemu.MapLine l : map) {
            if (l.data() && !l.zero()) {
                for (long k = l.start() / c; k * c < l.start() + l.length(); k++) {
                    clusters.add(k);
                }
            }
        }
        return clusters.stream().mapToLong(k -> Math.min(c, size - k * c)).sum();
    }

}
