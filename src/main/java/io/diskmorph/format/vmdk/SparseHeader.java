package io.diskmorph.format.vmdk;

import io.diskmorph.image.CorruptImageException;
import io.diskmorph.image.ImageException;
import io.diskmorph.image.UnsupportedFeatureException;
import io.diskmorph.storage.Storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * The geometry of one sparse extent, read from one of the three headers qemu
 * 7.2 reads (block/vmdk.c: vmdk_open_vmdk4, vmdk_open_vmfs_sparse,
 * vmdk_open_se_sparse), all little endian:
 * <ul>
 * <li>hosted sparse, magic "KDMV", versions 1-3 (VMDK 1.1 technote, "Hosted
 *     Sparse Extent Header"): a grain directory of u32 grain-table sectors,
 *     grain tables of numGTEsPerGT u32 grain sectors; 0 unallocated, 1 a
 *     zeroed grain when flag bit 2 is set; flag bit 1: a redundant grain
 *     directory; compressAlgorithm 1 with flag bits 16-17: deflated grains
 *     behind grain markers (streamOptimized), whose grain directory may be
 *     in a footer at the end of the file (gdOffset = GD_AT_END);</li>
 * <li>ESX sparse, magic "COWD" (VMFSSPARSE extents of vmfsSparse snapshots):
 *     the directory size is in the header, grain tables have 4096 entries;</li>
 * <li>ESXi seSparse (magic 0xcafebabe, SESPARSE extents): 4 KiB grains, u64
 *     directory and table entries whose top nibble says what they are.</li>
 * </ul>
 * Every field is checked with exact arithmetic before anything is sized from
 * it; qemu's own limits apply (grains up to 1 GiB, at most 512 entries per
 * hosted grain table, at most 32 Mi directory entries).
 */
record SparseHeader(Kind kind, int version, long capacitySectors, long grainSectors, int gtEntries, int entryBytes,
                    long gdOffset, long gdEntries, long rgdOffset, boolean compressed, boolean markers,
                    boolean zeroedGrains, long overheadSectors, long descriptorOffset, long descriptorBytes,
                    long seGrainTablesSector, long seGrainsSector) {

    enum Kind { HOSTED, ESX_COWD, SE_SPARSE }

    static final int SECTOR = 512;
    static final int MAGIC_KDMV = 0x4b444d56; // "KDMV" read big endian, as qemu does
    static final int MAGIC_COWD = 0x434f5744; // "COWD"
    static final long MAGIC_SESPARSE = 0xcafebabeL;
    private static final long MAGIC_SESPARSE_VOLATILE = 0xcafecafeL;
    private static final long SESPARSE_VERSION = 0x0000000200000001L;

    static final int FLAG_REDUNDANT_GD = 1 << 1;
    static final int FLAG_ZEROED_GRAIN = 1 << 2;
    static final int FLAG_COMPRESSED = 1 << 16;
    static final int FLAG_MARKERS = 1 << 17;
    static final long GD_AT_END = -1L;
    static final int COMPRESSION_DEFLATE = 1;

    /** qemu: "0x200000 * 512Bytes = 1GB for one cluster is unrealistic". */
    static final long MAX_GRAIN_SECTORS = 0x200000;
    /** qemu's bound on the grain directory ("L1 size too big"). */
    static final long MAX_GD_ENTRIES = 32L << 20;
    /** Hosted grain tables: qemu refuses more entries ("L2 table size too big"). */
    static final int MAX_HOSTED_GT_ENTRIES = 512;
    static final int COWD_GT_ENTRIES = 4096;

    /** Bytes one grain covers. */
    long grainBytes() {
        return grainSectors * SECTOR;
    }

    /** Guest bytes one grain table covers. */
    long gtCoverage() {
        return grainBytes() * gtEntries;
    }

    long gtBytes() {
        return (long) gtEntries * entryBytes;
    }

    long capacityBytes() {
        return capacitySectors * SECTOR;
    }

    /** Whether the first bytes of a file are a hosted sparse header with no capacity but a descriptor: a descriptor in a binary wrapper (qemu opens it as a descriptor file). */
    static boolean isWrappedDescriptor(ByteBuffer head) {
        if (head.remaining() < 36 || head.order(ByteOrder.BIG_ENDIAN).getInt(0) != MAGIC_KDMV) {
            return false;
        }
        ByteBuffer h = head.duplicate().order(ByteOrder.LITTLE_ENDIAN);
        return h.getLong(12) == 0 && h.getLong(28) != 0;
    }

    /** The descriptor offset of a wrapped descriptor ({@link #isWrappedDescriptor}), in bytes; -1 when out of range. */
    static long wrappedDescriptorOffset(ByteBuffer head) {
        long sectors = head.duplicate().order(ByteOrder.LITTLE_ENDIAN).getLong(28);
        return sectors < 0 || sectors > Descriptor.MAX_SECTORS ? -1 : sectors * SECTOR;
    }

    /**
     * Reads the header of the sparse extent in {@code file}: KDMV or COWD
     * by magic (SPARSE and VMFSSPARSE lines, a monolithic file), seSparse when
     * {@code seSparse} (SESPARSE lines).
     */
    static SparseHeader read(Storage file, boolean seSparse, String where) throws IOException {
        long size = file.size();
        if (size < 4) {
            throw corrupt(where, "header", -1, "file is too small to be a sparse extent (" + size + " bytes)");
        }
        ByteBuffer head = file.readBytes(0, SECTOR).order(ByteOrder.LITTLE_ENDIAN);
        if (seSparse) {
            return seSparse(file, head, where);
        }
        int magic = head.order(ByteOrder.BIG_ENDIAN).getInt(0);
        head.order(ByteOrder.LITTLE_ENDIAN);
        if (magic == MAGIC_KDMV) {
            return hosted(file, head, size, where);
        }
        if (magic == MAGIC_COWD) {
            return cowd(head, where);
        }
        throw corrupt(where, "header", 0, "no sparse extent magic ('KDMV' or 'COWD'): not a VMDK sparse extent");
    }

    private static SparseHeader hosted(Storage file, ByteBuffer head, long size, String where) throws IOException {
        ByteBuffer h = head;
        if (h.getLong(56) == GD_AT_END) {
            // streamOptimized: the footer, a copy of the header with the real grain directory offset, sits before
            // the end-of-stream marker in the last three sectors (footer marker, footer, end of stream)
            long fileSectors = Math.ceilDiv(size, SECTOR);
            if (fileSectors < 3) {
                throw corrupt(where, "footer", -1, "grain directory at the end, but the file has no room for a "
                        + "footer (" + size + " bytes)");
            }
            long at = (fileSectors - 3) * SECTOR;
            ByteBuffer f = file.readBytes(at, 3 * SECTOR).order(ByteOrder.LITTLE_ENDIAN);
            boolean footerMarker = f.getInt(8) == 0 && f.getInt(12) == 3;
            boolean footerMagic = f.order(ByteOrder.BIG_ENDIAN).getInt(SECTOR) == MAGIC_KDMV;
            f.order(ByteOrder.LITTLE_ENDIAN);
            boolean endOfStream = f.getLong(2 * SECTOR) == 0 && f.getInt(2 * SECTOR + 8) == 0
                    && f.getInt(2 * SECTOR + 12) == 0;
            if (!footerMarker || !footerMagic || !endOfStream) {
                throw corrupt(where, "footer", at, "invalid footer (the header says the grain directory is at the "
                        + "end of the file)");
            }
            h = f.slice(SECTOR, SECTOR).order(ByteOrder.LITTLE_ENDIAN);
        }
        int version = h.getInt(4);
        int flags = h.getInt(8);
        long capacity = h.getLong(12);
        long grain = h.getLong(20);
        long descOffset = h.getLong(28);
        long descSize = h.getLong(36);
        long gtEntries = Integer.toUnsignedLong(h.getInt(44));
        long rgd = h.getLong(48);
        long gd = h.getLong(56);
        long overhead = h.getLong(64);
        int algorithm = Short.toUnsignedInt(h.getShort(77));
        if (Integer.compareUnsigned(version, 3) > 0) {
            throw new UnsupportedFeatureException(where + ": VMDK sparse extent version "
                    + Integer.toUnsignedString(version) + " is not supported (qemu reads versions 1 to 3)");
        }
        if (gtEntries == 0) {
            throw corrupt(where, "header", 44, "grain tables of 0 entries");
        }
        if (gtEntries > MAX_HOSTED_GT_ENTRIES) {
            throw corrupt(where, "header", 44, "grain tables of " + gtEntries + " entries (at most "
                    + MAX_HOSTED_GT_ENTRIES + ")");
        }
        checkGrain(grain, where, 20);
        if (algorithm > COMPRESSION_DEFLATE) {
            throw new UnsupportedFeatureException(where + ": VMDK compression algorithm " + algorithm
                    + " is not supported (1, deflate, is)");
        }
        checkCapacity(capacity, where, 12);
        long gdEntries = Math.ceilDiv(capacity, gtEntries * grain);
        checkGdEntries(gdEntries, where);
        long fileSectors = Math.ceilDiv(size, SECTOR);
        if (Long.compareUnsigned(overhead, fileSectors) > 0) {
            throw corrupt(where, "header", 64, "file truncated: the grains start at sector "
                    + Long.toUnsignedString(overhead) + ", past the end of the file (" + size + " bytes)");
        }
        if (gd == 0 || gd == GD_AT_END) {
            throw corrupt(where, "header", 56, "no grain directory offset");
        }
        long gdOffset = sectorsToBytes(gd, where, "grain directory", 56);
        long rgdOffset = (flags & FLAG_REDUNDANT_GD) != 0 && rgd != 0
                ? sectorsToBytes(rgd, where, "redundant grain directory", 48) : 0;
        checkTableFits(gdOffset, gdEntries * 4, where, "grain directory");
        checkTableFits(rgdOffset, gdEntries * 4, where, "redundant grain directory");
        long descriptorOffset = descOffset == 0 ? 0 : sectorsToBytes(descOffset, where, "descriptor", 28);
        long maxDescSectors = (Descriptor.MAX_BYTES + 1) / SECTOR; // qemu reads at most 1 MiB of descriptor
        long descriptorBytes = descOffset == 0 ? 0
                : (Long.compareUnsigned(descSize, maxDescSectors) > 0 ? maxDescSectors : descSize) * SECTOR;
        boolean compressed = algorithm == COMPRESSION_DEFLATE;
        return new SparseHeader(Kind.HOSTED, version, capacity, grain, (int) gtEntries, 4, gdOffset, gdEntries,
                rgdOffset, compressed, (flags & FLAG_MARKERS) != 0, (flags & FLAG_ZEROED_GRAIN) != 0, overhead,
                descriptorOffset, descriptorBytes, 0, 0);
    }

    /** The ESX sparse header after the magic: version, flags, capacity, grain, directory sector and size (u32 each). */
    private static SparseHeader cowd(ByteBuffer h, String where) throws ImageException {
        int version = h.getInt(4);
        long capacity = Integer.toUnsignedLong(h.getInt(12));
        long grain = Integer.toUnsignedLong(h.getInt(16));
        long gdSector = Integer.toUnsignedLong(h.getInt(20));
        long gdEntries = Integer.toUnsignedLong(h.getInt(24));
        checkGrain(grain, where, 16);
        checkGdEntries(gdEntries, where);
        long coverage = gdEntries * COWD_GT_ENTRIES * grain; // < 2^25 * 2^12 * 2^21: no overflow
        if (coverage < capacity) {
            throw corrupt(where, "header", 24, "the grain directory (" + gdEntries + " entries) covers "
                    + coverage + " sectors, less than the capacity of " + capacity);
        }
        if (gdSector == 0 && gdEntries > 0) {
            throw corrupt(where, "header", 20, "no grain directory offset");
        }
        return new SparseHeader(Kind.ESX_COWD, version, capacity, grain, COWD_GT_ENTRIES, 4, gdSector * SECTOR,
                gdEntries, 0, false, false, false, 0, 0, 0, 0, 0);
    }

    /** qemu's strict checks of seSparse headers (the format is not officially documented). */
    private static SparseHeader seSparse(Storage file, ByteBuffer h, String where) throws IOException {
        if (h.getLong(0) != MAGIC_SESPARSE) {
            throw corrupt(where, "seSparse header", 0, String.format("bad magic 0x%016x", h.getLong(0)));
        }
        if (h.getLong(8) != SESPARSE_VERSION) {
            throw new UnsupportedFeatureException(where + String.format(": seSparse version 0x%016x is not "
                    + "supported", h.getLong(8)));
        }
        long capacity = h.getLong(16);
        long grain = h.getLong(24);
        long gtSectors = h.getLong(32);
        if (grain != 8 || gtSectors != 64) {
            throw new UnsupportedFeatureException(where + ": seSparse with grains of " + grain
                    + " sectors and grain tables of " + gtSectors + " sectors is not supported (8 and 64 are)");
        }
        for (int at = 40; at < 80; at += 8) {
            if (h.getLong(at) != 0) {
                throw new UnsupportedFeatureException(where + ": seSparse header with flags or reserved fields "
                        + "set is not supported");
            }
        }
        for (int at = 208; at < SECTOR; at += 8) {
            if (h.getLong(at) != 0) {
                throw new UnsupportedFeatureException(where + ": seSparse header with non-zero padding");
            }
        }
        checkCapacity(capacity, where, 16);
        long volatileHeader = sectorsToBytes(h.getLong(80), where, "seSparse volatile header", 80);
        ByteBuffer v = file.readBytes(volatileHeader, SECTOR).order(ByteOrder.LITTLE_ENDIAN);
        if (v.getLong(0) != MAGIC_SESPARSE_VOLATILE) {
            throw corrupt(where, "seSparse volatile header", volatileHeader, String.format("bad magic 0x%016x",
                    v.getLong(0)));
        }
        if (v.getLong(24) != 0) {
            throw new UnsupportedFeatureException(where + ": seSparse image is dirty: its journal needs to be "
                    + "replayed (by ESXi)");
        }
        for (int at = 32; at < SECTOR; at += 8) {
            if (v.getLong(at) != 0) {
                throw new UnsupportedFeatureException(where + ": seSparse volatile header with non-zero padding");
            }
        }
        long gdOffset = sectorsToBytes(h.getLong(128), where, "seSparse grain directory", 128);
        long gdSectors = h.getLong(136);
        if (gdSectors < 0 || gdSectors > MAX_GD_ENTRIES * 8 / SECTOR) {
            throw corrupt(where, "seSparse header", 136, "grain directory of " + Long.toUnsignedString(gdSectors)
                    + " sectors (at most " + MAX_GD_ENTRIES * 8 / SECTOR + ")");
        }
        long gdEntries = gdSectors * SECTOR / 8;
        int gtEntries = (int) (gtSectors * SECTOR / 8);
        long coverage = gdEntries * gtEntries * grain;
        if (coverage < capacity) {
            throw corrupt(where, "seSparse header", 136, "the grain directory covers " + coverage
                    + " sectors, less than the capacity of " + capacity);
        }
        long tables = h.getLong(144);
        long grains = h.getLong(192);
        if (tables < 0 || tables > 0xffffffffL || grains < 0 || grains > Descriptor.MAX_SECTORS) {
            throw corrupt(where, "seSparse header", 144, "grain tables or grains start out of range");
        }
        return new SparseHeader(Kind.SE_SPARSE, 0, capacity, grain, gtEntries, 8, gdOffset, gdEntries, 0, false,
                false, false, 0, 0, 0, tables, grains);
    }

    private static void checkGrain(long grainSectors, String where, int field) throws CorruptImageException {
        if (grainSectors <= 0 || grainSectors > MAX_GRAIN_SECTORS) {
            throw corrupt(where, "header", field, "grains of " + Long.toUnsignedString(grainSectors)
                    + " sectors (1 to " + MAX_GRAIN_SECTORS + ")");
        }
    }

    private static void checkCapacity(long sectors, String where, int field) throws CorruptImageException {
        if (sectors < 0 || sectors > Descriptor.MAX_SECTORS) {
            throw corrupt(where, "header", field, "capacity of " + Long.toUnsignedString(sectors)
                    + " sectors is out of range");
        }
    }

    private static void checkGdEntries(long entries, String where) throws CorruptImageException {
        if (entries > MAX_GD_ENTRIES) {
            throw corrupt(where, "header", -1, "grain directory of " + entries + " entries (qemu's limit is "
                    + MAX_GD_ENTRIES + ")");
        }
    }

    private static void checkTableFits(long offset, long bytes, String where, String what)
            throws CorruptImageException {
        if (offset > Long.MAX_VALUE - bytes) {
            throw corrupt(where, "header", -1, what + " ends past 2^63 bytes");
        }
    }

    static long sectorsToBytes(long sectors, String where, String what, int field) throws CorruptImageException {
        if (sectors < 0 || sectors > Descriptor.MAX_SECTORS) {
            throw corrupt(where, "header", field, what + " at sector " + Long.toUnsignedString(sectors)
                    + " is out of range");
        }
        return sectors * SECTOR;
    }

    private static CorruptImageException corrupt(String where, String structure, long offset, String problem) {
        return new CorruptImageException("VMDK sparse extent " + structure, offset, where + ": " + problem);
    }
}
