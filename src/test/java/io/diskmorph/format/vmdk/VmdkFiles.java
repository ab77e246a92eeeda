package io.diskmorph.format.vmdk;

import com.fasterxml.jackson.databind.JsonNode;
import io.diskmorph.testing.Dm;
import io.diskmorph.testing.Qemu;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.zip.Deflater;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * VMDK test files: layouts written byte by byte from the VMDK 1.1 technote
 * and libvmdk's notes (independent of the driver under test), as VMware,
 * ESXi and VirtualBox lay them out, and the qemu-img 7.2 oracle: info JSON,
 * map JSON, guest bytes, vmdkinfo (libvmdk).
 */
final class VmdkFiles {
    static final int SECTOR = 512;

    private VmdkFiles() {
    }

    // ---- the oracle -----------------------------------------------------------------------

    /** info --output=json: the same tree as qemu-img's (key order aside). */
    static void assertSameInfo(Path image) throws IOException {
        JsonNode ours = Dm.run("info", "--output=json", image).ok().json();
        JsonNode qemu = Qemu.img("info", "--output=json", image).ok().json();
        assertEquals(qemu, ours, "info of " + image);
    }

    /** map --output=json: the same extents, offsets, flags as qemu-img's; the human map's lines too. */
    static void assertSameMap(Path image) {
        assertEquals(Qemu.map(image, null), Dm.map(image, null), "map of " + image);
        Qemu.Result q = Qemu.img("map", image);
        Dm.Result d = Dm.run("map", image);
        assertEquals(q.out(), d.out(), "human map of " + image);
        assertEquals(q.exitCode() == 0, d.exitCode() == 0, "human map of " + image + ": " + q.err() + d.err());
    }

    /** Guest bytes: diskmorph's raw copy equals qemu-img's. */
    static void assertSameGuestBytes(Path image, Path scratch) throws IOException {
        Path ours = scratch.resolve("ours.raw");
        Path qemu = scratch.resolve("qemu.raw");
        Files.deleteIfExists(ours);
        Files.deleteIfExists(qemu);
        Dm.run("convert", "-O", "raw", image, ours).ok();
        Qemu.img("convert", "-O", "raw", image, qemu).ok();
        assertEquals(-1, mismatch(ours, qemu), "guest bytes of " + image + " differ at this offset");
    }

    /** Files.mismatch, streaming (images can be larger than a byte array). */
    static long mismatch(Path a, Path b) throws IOException {
        return Files.mismatch(a, b);
    }

    /** Everything the oracle compares. */
    static void assertReadsLikeQemu(Path image, Path scratch) throws IOException {
        assertSameInfo(image);
        assertSameMap(image);
        assertSameGuestBytes(image, scratch);
        Qemu.Result qc = Qemu.img("check", image);
        Dm.Result dc = Dm.run("check", image);
        assertEquals(qc.exitCode(), dc.exitCode(), "check of " + image + ": " + qc.out() + qc.err() + " / "
                + dc.out() + dc.err());
        assertVmdkinfoAgrees(image);
    }

    /**
     * libvmdk's vmdkinfo, a reader independent of qemu: media size, content
     * identifiers, number of extents and their file names agree where it
     * reports them (it does not open descriptors it cannot parse).
     */
    static void assertVmdkinfoAgrees(Path image) throws IOException {
        Qemu.Result r = Qemu.run("vmdkinfo", image.toString());
        if (r.exitCode() != 0) {
            return; // libvmdk refuses some layouts qemu reads (its own limits); nothing to compare
        }
        Map<String, String> v = new LinkedHashMap<>();
        List<String> files = new ArrayList<>();
        for (String line : r.out().split("\n")) {
            int colon = line.indexOf(':');
            if (colon < 0) {
                continue;
            }
            String key = line.substring(0, colon).strip();
            String value = line.substring(colon + 1).strip();
            if (key.equals("Filename")) {
                files.add(value);
            } else {
                v.putIfAbsent(key, value);
            }
        }
        JsonNode info = Dm.run("info", "--output=json", image).ok().json();
        JsonNode data = info.get("format-specific").get("data");
        String media = v.get("Media size");
        assertTrue(media.endsWith("(" + info.get("virtual-size").asLong() + " bytes)"), "vmdkinfo: " + media);
        assertEquals(Long.parseLong(v.get("Content identifier").substring(2), 16), data.get("cid").asLong());
        assertEquals(Long.parseLong(v.get("Parent content identifier").substring(2), 16),
                data.get("parent-cid").asLong());
        assertEquals(Integer.parseInt(v.get("Number of extents")), data.get("extents").size());
        for (int i = 0; i < files.size(); i++) {
            String ours = data.get("extents").get(i).get("filename").asText();
            assertTrue(ours.endsWith(files.get(i)), "vmdkinfo extent " + i + ": " + files.get(i) + " vs " + ours);
        }
    }

    // ---- files ----------------------------------------------------------------------------

    static String sha256(Path p) throws Exception {
        MessageDigest md = MessageDigest.getInstance("SHA-256");
        md.update(Files.readAllBytes(p));
        return HexFormat.of().formatHex(md.digest());
    }

    static void write(Path f, long offset, byte[] bytes) throws IOException {
        try (var ch = java.nio.channels.FileChannel.open(f, java.nio.file.StandardOpenOption.WRITE)) {
            ByteBuffer b = ByteBuffer.wrap(bytes);
            while (b.hasRemaining()) {
                ch.write(b, offset + b.position());
            }
        }
    }

    static void putU32(Path f, long offset, long value) throws IOException {
        write(f, offset, ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt(0, (int) value).array());
    }

    static void putU64(Path f, long offset, long value) throws IOException {
        write(f, offset, ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(0, value).array());
    }

    static long u32(Path f, long offset) throws IOException {
        try (var ch = java.nio.channels.FileChannel.open(f)) {
            ByteBuffer b = ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN);
            ch.read(b, offset);
            return Integer.toUnsignedLong(b.getInt(0));
        }
    }

    static long u64(Path f, long offset) throws IOException {
        try (var ch = java.nio.channels.FileChannel.open(f)) {
            ByteBuffer b = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
            ch.read(b, offset);
            return b.getLong(0);
        }
    }

    /** Bytes of one pattern (the value and a counter, so that misplaced sectors show). */
    static byte[] pattern(int length, int seed) {
        byte[] b = new byte[length];
        for (int i = 0; i < length; i++) {
            b[i] = (byte) (seed * 31 + i / SECTOR * 7 + (i & 0xff));
        }
        return b;
    }

    /** A descriptor file: header lines, the extent lines, a disk database. */
    static String descriptor(long cid, long parentCid, String createType, String parentHint, String... extentLines) {
        StringBuilder b = new StringBuilder("# Disk DescriptorFile\nversion=1\nencoding=\"UTF-8\"\n");
        b.append(String.format("CID=%08x%nparentCID=%08x%n", cid, parentCid));
        b.append("isNativeSnapshot=\"no\"\ncreateType=\"").append(createType).append("\"\n");
        if (parentHint != null) {
            b.append("parentFileNameHint=\"").append(parentHint).append("\"\n");
        }
        b.append("\n# Extent description\n");
        for (String l : extentLines) {
            b.append(l).append('\n');
        }
        b.append("\n# The Disk Data Base\n#DDB\n\nddb.adapterType = \"lsilogic\"\nddb.geometry.cylinders = \"130\"\n"
                + "ddb.geometry.heads = \"255\"\nddb.geometry.sectors = \"63\"\nddb.thinProvisioned = \"1\"\n"
                + "ddb.uuid = \"60 00 C2 9a 2b 7f 3e 1c-7d 0e 4d 2a 11 f0 a9 c3\"\n"
                + "ddb.virtualHWVersion = \"13\"\n");
        return b.toString();
    }

    /**
     * An ESXi disk: NAME.vmdk (createType "vmfs", one VMFS extent) and
     * NAME-flat.vmdk holding {@code raw}'s bytes, as ESXi writes a thick or
     * thin disk on a datastore.
     */
    static Path esxiPair(Path dir, String name, Path raw, long cid) throws IOException {
        long size = Files.size(raw);
        Path flat = dir.resolve(name + "-flat.vmdk");
        Files.copy(raw, flat, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        Path desc = dir.resolve(name + ".vmdk");
        Files.writeString(desc, descriptor(cid, 0xffffffffL, "vmfs", null,
                "RW " + size / SECTOR + " VMFS \"" + name + "-flat.vmdk\""));
        return desc;
    }

    // ---- sparse extents built by hand -----------------------------------------------------

    /**
     * A hosted sparse extent ("KDMV") laid out like VirtualBox and VMware
     * Workstation: header, embedded descriptor at sector 1, redundant grain
     * directory and tables, grain directory and tables, grains from the
     * overhead on, each grain where the write order put it (not in guest
     * order). Grains are {@code grainSectors} sectors; {@code grains} maps a
     * guest grain index to its content (null: a zeroed grain when
     * {@code zeroedGrains}).
     */
    static final class SparseBuilder {
        long capacitySectors;
        long grainSectors = 128;
        int gtEntries = 512;
        int version = 1;
        boolean redundant = true;
        boolean zeroedGrains;
        /** The overhead is rounded up to this many sectors (VirtualBox and VMware: a grain, 64 KiB). */
        long alignSectors = 128;
        String descriptor;
        final Map<Long, byte[]> grains = new LinkedHashMap<>();

        SparseBuilder(long capacitySectors) {
            this.capacitySectors = capacitySectors;
        }

        long gdEntries() {
            return Math.ceilDiv(capacitySectors, (long) gtEntries * grainSectors);
        }

        long gtSectors() {
            return Math.ceilDiv(gtEntries * 4L, SECTOR);
        }

        long gdSectors() {
            return Math.ceilDiv(gdEntries() * 4, SECTOR);
        }

        byte[] build() {
            long descSectors = 20;
            long rgd = 1 + descSectors;
            long rgt = rgd + gdSectors();
            long gd = rgt + gdEntries() * gtSectors();
            long gt = gd + gdSectors();
            long overhead = Math.ceilDiv(gt + gdEntries() * gtSectors(), alignSectors) * alignSectors;
            long dataGrains = grains.values().stream().filter(g -> g != null).count();
            long fileSectors = overhead + dataGrains * grainSectors;
            ByteBuffer f = ByteBuffer.allocate(Math.toIntExact(fileSectors * SECTOR)).order(ByteOrder.LITTLE_ENDIAN);
            f.put(0, "KDMV".getBytes(StandardCharsets.US_ASCII));
            int flags = 1 | (redundant ? 2 : 0) | (zeroedGrains ? 4 : 0);
            f.putInt(4, version).putInt(8, flags).putLong(12, capacitySectors).putLong(20, grainSectors)
                    .putLong(28, 1).putLong(36, descSectors).putInt(44, gtEntries).putLong(48, redundant ? rgd : 0)
                    .putLong(56, gd).putLong(64, overhead);
            f.put(73, (byte) '\n').put(74, (byte) ' ').put(75, (byte) '\r').put(76, (byte) '\n');
            byte[] d = descriptor.getBytes(StandardCharsets.UTF_8);
            f.put(SECTOR, d);
            for (long i = 0; i < gdEntries(); i++) {
                f.putInt((int) (rgd * SECTOR + 4 * i), (int) (rgt + i * gtSectors()));
                f.putInt((int) (gd * SECTOR + 4 * i), (int) (gt + i * gtSectors()));
            }
            long next = overhead;
            for (Map.Entry<Long, byte[]> e : grains.entrySet()) {
                long index = e.getKey();
                long table = index / gtEntries;
                int entry = (int) (index % gtEntries);
                long value;
                if (e.getValue() == null) {
                    value = 1; // zeroed grain
                } else {
                    value = next;
                    f.put((int) (next * SECTOR), e.getValue());
                    next += grainSectors;
                }
                f.putInt((int) ((rgt + table * gtSectors()) * SECTOR + 4 * entry), (int) value);
                f.putInt((int) ((gt + table * gtSectors()) * SECTOR + 4 * entry), (int) value);
            }
            return f.array();
        }
    }

    /**
     * An ESX sparse extent ("COWD", a vmfsSparse snapshot's NAME-delta.vmdk):
     * the 2048-byte header, the grain directory at sector 4, tables of 4096
     * entries, grains after them in the order given.
     */
    static byte[] cowd(long capacitySectors, long grainSectors, Map<Long, byte[]> grains) {
        long gdEntries = Math.ceilDiv(capacitySectors, 4096 * grainSectors);
        long gdSectors = Math.ceilDiv(gdEntries * 4, SECTOR);
        long gt = 4 + gdSectors;
        long tableSectors = 4096 * 4 / SECTOR;
        long next = gt + gdEntries * tableSectors;
        ByteBuffer f = ByteBuffer.allocate(Math.toIntExact((next + grains.size() * grainSectors) * SECTOR))
                .order(ByteOrder.LITTLE_ENDIAN);
        f.put(0, "COWD".getBytes(StandardCharsets.US_ASCII));
        f.putInt(4, 1).putInt(8, 3).putInt(12, (int) capacitySectors).putInt(16, (int) grainSectors).putInt(20, 4)
                .putInt(24, (int) gdEntries).putInt(28, (int) (next + grains.size() * grainSectors));
        for (long i = 0; i < gdEntries; i++) {
            f.putInt((int) (4 * SECTOR + 4 * i), (int) (gt + i * tableSectors));
        }
        for (Map.Entry<Long, byte[]> e : grains.entrySet()) {
            long index = e.getKey();
            f.putInt((int) ((gt + index / 4096 * tableSectors) * SECTOR + 4 * (index % 4096)), (int) next);
            f.put((int) (next * SECTOR), e.getValue());
            next += grainSectors;
        }
        return f.array();
    }

    /**
     * An seSparse extent (ESXi 6.5+ snapshots, NAME-sesparse.vmdk) as qemu's
     * reader expects it: const header, volatile header, grain directory of
     * u64 entries (0x1000000000000000 | table number), tables of 4096 u64
     * entries (top nibble 3: allocated, 2: zero), 4 KiB grains. {@code
     * grains} maps a guest grain index to its content, null for a zero grain.
     */
    static byte[] seSparse(long capacitySectors, Map<Long, byte[]> grains) {
        long grainSectors = 8;
        long gtEntries = 4096;
        long gdEntries = Math.ceilDiv(capacitySectors, gtEntries * grainSectors);
        long gdSectors = Math.max(1, Math.ceilDiv(gdEntries * 8, SECTOR));
        long volatileSector = 1;
        long gdSector = 8;
        long tablesSector = gdSector + gdSectors;
        long tableSectors = gtEntries * 8 / SECTOR;
        long grainsSector = tablesSector + gdEntries * tableSectors;
        long dataGrains = grains.values().stream().filter(g -> g != null).count();
        ByteBuffer f = ByteBuffer.allocate(Math.toIntExact((grainsSector + dataGrains * grainSectors) * SECTOR))
                .order(ByteOrder.LITTLE_ENDIAN);
        f.putLong(0, 0xcafebabeL).putLong(8, 0x0000000200000001L).putLong(16, capacitySectors)
                .putLong(24, grainSectors).putLong(32, 64).putLong(80, volatileSector).putLong(88, 1)
                .putLong(128, gdSector).putLong(136, gdSectors).putLong(144, tablesSector)
                .putLong(152, gdEntries * tableSectors).putLong(192, grainsSector);
        f.putLong((int) (volatileSector * SECTOR), 0xcafecafeL);
        long[] tableOf = new long[(int) gdEntries];
        java.util.Arrays.fill(tableOf, -1);
        long tables = 0;
        long cluster = 0;
        for (Map.Entry<Long, byte[]> e : grains.entrySet()) {
            long index = e.getKey();
            int gdIndex = (int) (index / gtEntries);
            if (tableOf[gdIndex] < 0) {
                tableOf[gdIndex] = tables++;
                f.putLong((int) (gdSector * SECTOR + 8L * gdIndex), 0x1000000000000000L | tableOf[gdIndex]);
            }
            long entryAt = (tablesSector + tableOf[gdIndex] * tableSectors) * SECTOR + 8 * (index % gtEntries);
            if (e.getValue() == null) {
                f.putLong((int) entryAt, 0x2000000000000000L);
            } else {
                // cluster number: bits 48-59 hold its low 12 bits, bits 0-47 the rest
                long value = 0x3000000000000000L | (cluster & 0xfff) << 48 | cluster >>> 12;
                f.putLong((int) entryAt, value);
                f.put((int) ((grainsSector + cluster * grainSectors) * SECTOR), e.getValue());
                cluster++;
            }
        }
        return f.array();
    }

    /**
     * A streamOptimized file as VMware writes it for OVF export (qemu writes
     * its tables at the start instead): the header with the grain directory
     * "at the end" (GD_AT_END), the embedded descriptor, each grain deflated
     * behind a grain marker (lba, size), then for each table a grain table
     * marker and the table, a grain directory marker and the directory, a
     * footer marker, the footer (the header with the real directory offset)
     * and an end-of-stream marker. 64 KiB grains, 512 entries per table.
     */
    static byte[] vmwareStream(long capacitySectors, String descriptor, Map<Long, byte[]> grains) {
        long grainSectors = 128;
        int gtEntries = 512;
        long gdEntries = Math.ceilDiv(capacitySectors, gtEntries * grainSectors);
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteBuffer header = streamHeader(capacitySectors, -1);
        out.writeBytes(header.array());
        // the descriptor's 20 sectors, then zeros up to the overhead (128 sectors) where the first grain goes
        byte[] d = java.util.Arrays.copyOf(descriptor.getBytes(StandardCharsets.UTF_8), 127 * SECTOR);
        out.writeBytes(d);
        long[][] tables = new long[(int) gdEntries][gtEntries];
        for (Map.Entry<Long, byte[]> e : grains.entrySet()) {
            long sector = out.size() / SECTOR;
            byte[] z = deflate(e.getValue());
            ByteBuffer m = ByteBuffer.allocate((int) (Math.ceilDiv(12L + z.length, SECTOR) * SECTOR))
                    .order(ByteOrder.LITTLE_ENDIAN);
            m.putLong(0, e.getKey() * grainSectors).putInt(8, z.length).put(12, z);
            out.writeBytes(m.array());
            tables[(int) (e.getKey() / gtEntries)][(int) (e.getKey() % gtEntries)] = sector;
        }
        long[] directory = new long[(int) gdEntries];
        for (int t = 0; t < gdEntries; t++) {
            out.writeBytes(marker(gtEntries * 4 / SECTOR, 1));
            directory[t] = out.size() / SECTOR;
            ByteBuffer gt = ByteBuffer.allocate(gtEntries * 4).order(ByteOrder.LITTLE_ENDIAN);
            for (int k = 0; k < gtEntries; k++) {
                gt.putInt(4 * k, (int) tables[t][k]);
            }
            out.writeBytes(gt.array());
        }
        long gdSectors = Math.ceilDiv(gdEntries * 4, SECTOR);
        out.writeBytes(marker(gdSectors, 2));
        long gd = out.size() / SECTOR;
        ByteBuffer gdb = ByteBuffer.allocate((int) (gdSectors * SECTOR)).order(ByteOrder.LITTLE_ENDIAN);
        for (int t = 0; t < gdEntries; t++) {
            gdb.putInt(4 * t, (int) directory[t]);
        }
        out.writeBytes(gdb.array());
        out.writeBytes(marker(1, 3));
        out.writeBytes(streamHeader(capacitySectors, gd).array());
        out.writeBytes(marker(0, 0));
        return out.toByteArray();
    }

    private static ByteBuffer streamHeader(long capacitySectors, long gd) {
        ByteBuffer h = ByteBuffer.allocate(SECTOR).order(ByteOrder.LITTLE_ENDIAN);
        h.put(0, "KDMV".getBytes(StandardCharsets.US_ASCII));
        h.putInt(4, 3).putInt(8, 1 | 1 << 16 | 1 << 17).putLong(12, capacitySectors).putLong(20, 128)
                .putLong(28, 1).putLong(36, 20).putInt(44, 512).putLong(48, 0).putLong(56, gd).putLong(64, 128);
        h.put(73, (byte) '\n').put(74, (byte) ' ').put(75, (byte) '\r').put(76, (byte) '\n');
        h.putShort(77, (short) 1);
        return h;
    }

    /** A metadata marker: sectors of metadata that follow, and the type (0 end of stream, 1 table, 2 directory, 3 footer). */
    private static byte[] marker(long sectors, int type) {
        ByteBuffer m = ByteBuffer.allocate(SECTOR).order(ByteOrder.LITTLE_ENDIAN);
        m.putLong(0, sectors).putInt(8, 0).putInt(12, type);
        return m.array();
    }

    /** A zlib stream of {@code data} (what streamOptimized grains hold). */
    static byte[] deflate(byte[] data) {
        Deflater d = new Deflater();
        d.setInput(data);
        d.finish();
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        byte[] buf = new byte[8192];
        while (!d.finished()) {
            out.write(buf, 0, d.deflate(buf));
        }
        d.end();
        return out.toByteArray();
    }

    /** A raw file with data, written zeros and holes, made by qemu-io (sparse, as a guest leaves a disk). */
    static Path sampleRaw(Path dir, String name, String size, String... writes) {
        Path p = dir.resolve(name);
        Qemu.create(p, "raw", size);
        Qemu.io(p, "raw", writes);
        return p;
    }

    /** The writes of the usual sample: data, partial grains, zero writes, data past a grain table, the last sector. */
    static String[] sampleWrites(long size) {
        return new String[]{"write -P 0x11 0 192k", "write -P 0x22 300k 5k", "write -z 1M 256k",
                "write -P 0x33 2M 64k", "write -P 0 3M 64k", "write -P 0x44 " + (33L << 20) + " 100k",
                "write -P 0x55 " + (size - 512) + " 512"};
    }
}
