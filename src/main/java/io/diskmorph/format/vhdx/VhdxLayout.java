package io.diskmorph.format.vhdx;

import io.diskmorph.image.CorruptImageException;
import io.diskmorph.image.UnsupportedFeatureException;
import io.diskmorph.storage.Storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.zip.CRC32C;

/**
 * Everything of a VHDX file but its BAT and payload: the file identifier,
 * the two headers (the active one by sequence number, CRC-32C), the region
 * table (BAT and metadata regions), the metadata items (file parameters,
 * virtual disk size, sector sizes, page 83 id, parent locator) and the
 * geometry they imply (chunk ratio, BAT entries). Parsed once, bounded:
 * every offset and count is checked before it is used.
 */
final class VhdxLayout {
    static final long MIB = 1L << 20;
    static final long HEADER_SECTION = MIB;
    static final long HEADER1_OFFSET = 64 * 1024;
    static final long HEADER2_OFFSET = 128 * 1024;
    static final long REGION_TABLE1_OFFSET = 192 * 1024;
    static final long REGION_TABLE2_OFFSET = 256 * 1024;
    static final int HEADER_BYTES = 4096;
    static final int REGION_TABLE_BYTES = 64 * 1024;
    static final int METADATA_TABLE_BYTES = 64 * 1024;
    /** Both tables: the spec's limit, which qemu enforces for the region table. */
    static final int MAX_TABLE_ENTRIES = 2047;
    static final long MIN_BLOCK_SIZE = MIB;
    static final long MAX_BLOCK_SIZE = 256 * MIB;
    /** The spec's largest virtual disk. */
    static final long MAX_VIRTUAL_SIZE = 64L << 40;
    /** Sectors one sector bitmap block (1 MiB, a bit a sector) describes: 2^23. */
    static final long SECTORS_PER_BITMAP = 8L * MIB;

    static final Guid BAT_REGION = Guid.of("2DC27766-F623-4200-9D64-115E9BFD4A08");
    static final Guid METADATA_REGION = Guid.of("8B7CA206-4790-4B9A-B8FE-575F050F886E");
    static final Guid FILE_PARAMETERS = Guid.of("CAA16737-FA36-4D43-B3B6-33F0AA44E76B");
    static final Guid VIRTUAL_DISK_SIZE = Guid.of("2FA54224-CD1B-4876-B211-5DBED83BF4B8");
    static final Guid PAGE_83 = Guid.of("BECA12AB-B2E6-4523-93EF-C309E000C746");
    static final Guid LOGICAL_SECTOR_SIZE = Guid.of("8141BF1D-A96F-4709-BA47-F233A8FAAB5F");
    static final Guid PHYSICAL_SECTOR_SIZE = Guid.of("CDA348C7-445D-4471-9CC9-E9885251C556");
    static final Guid PARENT_LOCATOR = Guid.of("A8D35F2D-B30B-454D-ABF7-D3D84834AB0C");
    /** The locator type of a VHDX parent. */
    static final Guid VHDX_PARENT_TYPE = Guid.of("B04AEFB7-D19E-4A81-B789-25B8E9445913");

    private static final int SIG_HEAD = 0x64616568; // "head"
    private static final int SIG_REGI = 0x69676572; // "regi"
    private static final long SIG_METADATA = 0x617461646174656dL; // "metadata"

    /** A range of the file that holds metadata: payload blocks must not overlap one. */
    record Region(String what, long start, long end) {
        boolean overlaps(long s, long e) {
            return s < end && start < e;
        }
    }

    final String name;
    final long fileSize;
    // headers
    final boolean[] headerValid = new boolean[2];
    final int activeHeader;
    final long sequence;
    final Guid fileWriteGuid;
    final Guid dataWriteGuid;
    final Guid logGuid;
    final long logOffset;
    final long logLength;
    // region table
    final boolean[] regionTableValid = new boolean[2];
    final boolean regionTablesEqual;
    final long batOffset;
    final long batLength;
    final long metadataOffset;
    final long metadataLength;
    final List<Region> regions;
    // metadata
    final long blockSize;
    final boolean leaveBlocksAllocated;
    final boolean hasParent;
    final long virtualSize;
    final int logicalSectorSize;
    final int physicalSectorSize;
    final Guid page83;
    final Guid parentLocatorType;
    /** The parent locator's keys and values, in file order; empty without one. */
    final Map<String, String> parentLocator;
    // geometry
    final long chunkRatio;
    final long dataBlocks;
    final long batEntries;

    private VhdxLayout(Storage storage) throws IOException {
        this.name = storage.name();
        this.fileSize = storage.size();
        if (fileSize < HEADER_SECTION) {
            throw corrupt("VHDX file", -1, "the file is " + fileSize + " bytes, shorter than the 1 MiB header "
                    + "section of every VHDX file");
        }
        ByteBuffer id = storage.readBytes(0, 8);
        if (!"vhdxfile".equals(StandardCharsets.US_ASCII.decode(id).toString())) {
            throw corrupt("VHDX file identifier", 0, "no 'vhdxfile' signature");
        }
        List<Region> regs = new ArrayList<>();

        // ---- headers: the valid one with the higher sequence number (qemu's vhdx_parse_header)
        ByteBuffer[] h = new ByteBuffer[2];
        long[] seq = new long[2];
        for (int i = 0; i < 2; i++) {
            h[i] = storage.readBytes(i == 0 ? HEADER1_OFFSET : HEADER2_OFFSET, HEADER_BYTES)
                    .order(ByteOrder.LITTLE_ENDIAN);
            headerValid[i] = h[i].getInt(0) == SIG_HEAD && checksumValid(h[i]) && (h[i].getShort(66) & 0xffff) == 1;
            seq[i] = h[i].getLong(8);
        }
        int active;
        if (headerValid[0] && headerValid[1]) {
            int cmp = Long.compareUnsigned(seq[0], seq[1]);
            if (cmp == 0 && !h[0].equals(h[1])) {
                throw corrupt("VHDX headers", HEADER1_OFFSET, "both headers are valid with the same sequence number "
                        + Long.toUnsignedString(seq[0]) + " but differ: which one is current cannot be told");
            }
            active = cmp >= 0 ? 0 : 1;
        } else if (headerValid[0] || headerValid[1]) {
            active = headerValid[0] ? 0 : 1;
        } else {
            throw corrupt("VHDX headers", HEADER1_OFFSET, "no valid header (signature 'head', version 1 and "
                    + "CRC-32C) in either copy, at 64 KiB and 128 KiB");
        }
        ByteBuffer a = h[active];
        long activeAt = active == 0 ? HEADER1_OFFSET : HEADER2_OFFSET;
        this.activeHeader = active;
        this.sequence = seq[active];
        this.fileWriteGuid = Guid.read(a, 16);
        this.dataWriteGuid = Guid.read(a, 32);
        this.logGuid = Guid.read(a, 48);
        this.logLength = Integer.toUnsignedLong(a.getInt(68));
        this.logOffset = a.getLong(72);
        if (logLength > 0) {
            if (logOffset < HEADER_SECTION || logOffset > Long.MAX_VALUE - logLength) {
                throw corrupt("VHDX header", activeAt, "the log (" + logLength + " bytes at offset "
                        + Long.toUnsignedString(logOffset) + ") lies in the header section or past 2^63");
            }
            regs.add(new Region("the log", logOffset, logOffset + logLength));
        }

        // ---- region table: the first copy, the second when the first is damaged
        ByteBuffer[] rt = new ByteBuffer[2];
        for (int i = 0; i < 2; i++) {
            rt[i] = storage.readBytes(i == 0 ? REGION_TABLE1_OFFSET : REGION_TABLE2_OFFSET, REGION_TABLE_BYTES)
                    .order(ByteOrder.LITTLE_ENDIAN);
            regionTableValid[i] = rt[i].getInt(0) == SIG_REGI && checksumValid(rt[i]);
        }
        this.regionTablesEqual = rt[0].equals(rt[1]);
        if (!regionTableValid[0] && !regionTableValid[1]) {
            throw corrupt("VHDX region table", REGION_TABLE1_OFFSET, "neither copy (at 192 KiB and 256 KiB) has the "
                    + "signature 'regi' and a valid CRC-32C");
        }
        int table = regionTableValid[0] ? 0 : 1;
        ByteBuffer r = rt[table];
        long tableAt = table == 0 ? REGION_TABLE1_OFFSET : REGION_TABLE2_OFFSET;
        long count = Integer.toUnsignedLong(r.getInt(8));
        if (count > MAX_TABLE_ENTRIES) {
            throw corrupt("VHDX region table", tableAt, count + " entries (at most " + MAX_TABLE_ENTRIES + ")");
        }
        long bat = -1, batLen = 0, meta = -1, metaLen = 0;
        for (int i = 0; i < count; i++) {
            int at = 16 + 32 * i;
            Guid g = Guid.read(r, at);
            long off = r.getLong(at + 16);
            long len = Integer.toUnsignedLong(r.getInt(at + 24));
            boolean required = (r.getInt(at + 28) & 1) != 0;
            String what = g.equals(BAT_REGION) ? "the BAT" : g.equals(METADATA_REGION) ? "the metadata region"
                    : "region " + g;
            if (off < HEADER_SECTION || off > Long.MAX_VALUE - len) {
                throw corrupt("VHDX region table", tableAt + at, what + " (" + len + " bytes at offset "
                        + Long.toUnsignedString(off) + ") lies in the header section or past 2^63");
            }
            for (Region o : regs) {
                if (o.overlaps(off, off + len)) {
                    throw corrupt("VHDX region table", tableAt + at, what + " (" + len + " bytes at offset " + off
                            + ") overlaps " + o.what());
                }
            }
            regs.add(new Region(what, off, off + len));
            if (g.equals(BAT_REGION) || g.equals(METADATA_REGION)) {
                boolean isBat = g.equals(BAT_REGION);
                if (isBat ? bat >= 0 : meta >= 0) {
                    throw corrupt("VHDX region table", tableAt + at, what + " is listed twice");
                }
                if (isBat) {
                    bat = off;
                    batLen = len;
                } else {
                    meta = off;
                    metaLen = len;
                }
            } else if (required) {
                throw new UnsupportedFeatureException(name + ": VHDX region " + g + " is marked required and is "
                        + "not one this driver knows (BAT, metadata): the image cannot be read safely");
            }
        }
        if (bat < 0 || meta < 0) {
            throw corrupt("VHDX region table", tableAt, "no " + (bat < 0 ? "BAT" : "metadata") + " region");
        }
        this.batOffset = bat;
        this.batLength = batLen;
        this.metadataOffset = meta;
        this.metadataLength = metaLen;
        this.regions = Collections.unmodifiableList(regs);

        // ---- metadata table and items
        if (metaLen < METADATA_TABLE_BYTES) {
            throw corrupt("VHDX metadata region", meta, "the region is " + metaLen + " bytes, smaller than its "
                    + "64 KiB table");
        }
        ByteBuffer mt = storage.readBytes(meta, METADATA_TABLE_BYTES).order(ByteOrder.LITTLE_ENDIAN);
        if (mt.getLong(0) != SIG_METADATA) {
            throw corrupt("VHDX metadata table", meta, "no 'metadata' signature");
        }
        int items = mt.getShort(10) & 0xffff;
        if (items > MAX_TABLE_ENTRIES) {
            throw corrupt("VHDX metadata table", meta, items + " entries (at most " + MAX_TABLE_ENTRIES + ")");
        }
        Map<Guid, long[]> found = new LinkedHashMap<>();
        List<Guid> known = List.of(FILE_PARAMETERS, VIRTUAL_DISK_SIZE, PAGE_83, LOGICAL_SECTOR_SIZE,
                PHYSICAL_SECTOR_SIZE, PARENT_LOCATOR);
        for (int i = 0; i < items; i++) {
            int at = 32 + 32 * i;
            Guid g = Guid.read(mt, at);
            long off = Integer.toUnsignedLong(mt.getInt(at + 16));
            long len = Integer.toUnsignedLong(mt.getInt(at + 20));
            boolean required = (mt.getInt(at + 24) & 4) != 0;
            if (!known.contains(g)) {
                if (required) {
                    throw new UnsupportedFeatureException(name + ": VHDX metadata item " + g + " is marked "
                            + "required and is not one this driver knows: the image cannot be read safely");
                }
                continue;
            }
            if (found.containsKey(g)) {
                throw corrupt("VHDX metadata table", meta + at, "metadata item " + itemName(g) + " is listed twice");
            }
            if (off + len > metaLen || (len > 0 && off < METADATA_TABLE_BYTES)) {
                throw corrupt("VHDX metadata table", meta + at, "metadata item " + itemName(g) + " (" + len
                        + " bytes at " + off + ") lies outside the metadata region's items (64 KiB to " + metaLen
                        + ")");
            }
            found.put(g, new long[]{off, len});
        }
        ByteBuffer params = item(storage, found, FILE_PARAMETERS, 8);
        this.blockSize = Integer.toUnsignedLong(params.getInt(0));
        int flags = params.getInt(4);
        this.leaveBlocksAllocated = (flags & 1) != 0;
        this.hasParent = (flags & 2) != 0;
        this.virtualSize = item(storage, found, VIRTUAL_DISK_SIZE, 8).getLong(0);
        this.page83 = Guid.read(item(storage, found, PAGE_83, 16), 0);
        this.logicalSectorSize = item(storage, found, LOGICAL_SECTOR_SIZE, 4).getInt(0);
        this.physicalSectorSize = item(storage, found, PHYSICAL_SECTOR_SIZE, 4).getInt(0);
        if (blockSize < MIN_BLOCK_SIZE || blockSize > MAX_BLOCK_SIZE || Long.bitCount(blockSize) != 1) {
            throw corrupt("VHDX file parameters", -1, "block size " + blockSize + " (a power of two from 1 MiB to "
                    + "256 MiB)");
        }
        if (logicalSectorSize != 512 && logicalSectorSize != 4096) {
            throw corrupt("VHDX logical sector size", -1, Integer.toUnsignedString(logicalSectorSize)
                    + " (512 or 4096)");
        }
        if (physicalSectorSize != 512 && physicalSectorSize != 4096) {
            throw corrupt("VHDX physical sector size", -1, Integer.toUnsignedString(physicalSectorSize)
                    + " (512 or 4096)");
        }
        if (virtualSize < 0 || virtualSize > MAX_VIRTUAL_SIZE || virtualSize % logicalSectorSize != 0) {
            throw corrupt("VHDX virtual disk size", -1, Long.toUnsignedString(virtualSize) + " bytes (a multiple "
                    + "of the " + logicalSectorSize + "-byte logical sector, at most 64 TiB)");
        }
        if (hasParent) {
            if (!found.containsKey(PARENT_LOCATOR)) {
                throw corrupt("VHDX metadata table", meta, "the file parameters say the image has a parent, "
                        + "but there is no parent locator");
            }
            long[] loc = found.get(PARENT_LOCATOR);
            if (loc[1] < 20 || loc[1] > 64 * 1024) {
                throw corrupt("VHDX parent locator", meta + loc[0], loc[1] + " bytes (20 bytes to 64 KiB)");
            }
            ByteBuffer l = storage.readBytes(meta + loc[0], (int) loc[1]).order(ByteOrder.LITTLE_ENDIAN);
            this.parentLocatorType = Guid.read(l, 0);
            this.parentLocator = parseLocator(l, meta + loc[0]);
        } else {
            this.parentLocatorType = null;
            this.parentLocator = Map.of();
        }
        this.chunkRatio = SECTORS_PER_BITMAP * logicalSectorSize / blockSize;
        this.dataBlocks = (virtualSize + blockSize - 1) / blockSize;
        long bitmapBlocks = (dataBlocks + chunkRatio - 1) / chunkRatio;
        this.batEntries = hasParent ? bitmapBlocks * (chunkRatio + 1)
                : dataBlocks == 0 ? 0 : dataBlocks + (dataBlocks - 1) / chunkRatio;
        if (batEntries > batLength / 8) {
            throw corrupt("VHDX BAT region", batOffset, "the region holds " + batLength / 8 + " entries, and a "
                    + virtualSize + "-byte disk of " + blockSize + "-byte blocks needs " + batEntries);
        }
    }

    static VhdxLayout read(Storage storage) throws IOException {
        return new VhdxLayout(storage);
    }

    private ByteBuffer item(Storage storage, Map<Guid, long[]> found, Guid g, int bytes) throws IOException {
        long[] at = found.get(g);
        if (at == null) {
            throw corrupt("VHDX metadata table", metadataOffset, "the required metadata item " + itemName(g)
                    + " is missing");
        }
        if (at[1] < bytes) {
            throw corrupt("VHDX metadata table", metadataOffset, "metadata item " + itemName(g) + " is " + at[1]
                    + " bytes (" + bytes + " needed)");
        }
        return storage.readBytes(metadataOffset + at[0], bytes).order(ByteOrder.LITTLE_ENDIAN);
    }

    /** Keys and values (UTF-16LE) of a parent locator, each inside the item. */
    private Map<String, String> parseLocator(ByteBuffer l, long at) throws CorruptImageException {
        int count = l.getShort(18) & 0xffff;
        int len = l.limit();
        if (20L + 12L * count > len) {
            throw corrupt("VHDX parent locator", at, count + " entries do not fit in its " + len + " bytes");
        }
        Map<String, String> out = new LinkedHashMap<>();
        for (int i = 0; i < count; i++) {
            int e = 20 + 12 * i;
            long keyAt = Integer.toUnsignedLong(l.getInt(e));
            long valueAt = Integer.toUnsignedLong(l.getInt(e + 4));
            int keyLen = l.getShort(e + 8) & 0xffff;
            int valueLen = l.getShort(e + 10) & 0xffff;
            if (keyAt + keyLen > len || valueAt + valueLen > len || keyLen % 2 != 0 || valueLen % 2 != 0) {
                throw corrupt("VHDX parent locator", at + e, "entry " + i + " lies outside the locator or has an "
                        + "odd UTF-16 length");
            }
            String key = utf16(l, (int) keyAt, keyLen);
            String value = utf16(l, (int) valueAt, valueLen);
            if (out.putIfAbsent(key, value) != null) {
                throw corrupt("VHDX parent locator", at + e, "key '" + key + "' appears twice");
            }
        }
        return out;
    }

    private static String utf16(ByteBuffer b, int at, int len) {
        byte[] s = new byte[len];
        b.get(at, s);
        return new String(s, StandardCharsets.UTF_16LE);
    }

    /** CRC-32C of the whole structure with its checksum field (bytes 4..7) taken as zero. */
    static boolean checksumValid(ByteBuffer b) {
        return b.order(ByteOrder.LITTLE_ENDIAN).getInt(4) == checksum(b);
    }

    static int checksum(ByteBuffer b) {
        byte[] copy = new byte[b.limit()];
        b.get(0, copy);
        Arrays.fill(copy, 4, 8, (byte) 0);
        CRC32C c = new CRC32C();
        c.update(copy);
        return (int) c.getValue();
    }

    static String itemName(Guid g) {
        if (g.equals(FILE_PARAMETERS)) {
            return "'file parameters'";
        } else if (g.equals(VIRTUAL_DISK_SIZE)) {
            return "'virtual disk size'";
        } else if (g.equals(PAGE_83)) {
            return "'page 83 data'";
        } else if (g.equals(LOGICAL_SECTOR_SIZE)) {
            return "'logical sector size'";
        } else if (g.equals(PHYSICAL_SECTOR_SIZE)) {
            return "'physical sector size'";
        } else if (g.equals(PARENT_LOCATOR)) {
            return "'parent locator'";
        }
        return g.toString();
    }

    CorruptImageException corrupt(String structure, long offset, String problem) {
        return new CorruptImageException(structure, offset, name + ": " + problem);
    }

    /** The BAT index of payload block {@code block}: a sector bitmap entry follows every chunk ratio blocks. */
    long payloadEntry(long block) {
        return block + block / chunkRatio;
    }

    /** The BAT index of the sector bitmap entry of the chunk holding payload block {@code block}. */
    long bitmapEntry(long block) {
        return (block / chunkRatio) * (chunkRatio + 1) + chunkRatio;
    }
}
