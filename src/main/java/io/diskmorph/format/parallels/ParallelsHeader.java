package io.diskmorph.format.parallels;

import io.diskmorph.image.CorruptImageException;
import io.diskmorph.image.UnsupportedFeatureException;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;

/**
 * The 64-byte Parallels header (docs/interop/parallels.txt), little endian,
 * with the checks qemu 7.2's parallels_open makes (in its order and words)
 * and the bounds it skips, as corruption: a BAT past the end of the file or
 * over the data area, a data offset past the end of the file, a disk larger
 * than its BAT can map (qemu reads zeros there and aborts on a write).
 *
 * <p>Two magics: "WithoutFreeSpace" (the old one: BAT entries count
 * sectors, the disk size is the low 32 bits of nb_sectors) and
 * "WithouFreSpacExt" (BAT entries count clusters, nb_sectors is 64-bit),
 * which qemu-img creates.
 */
final class ParallelsHeader {
    static final int BYTES = 64;
    static final int SECTOR = 512;
    static final String MAGIC_OLD = "WithoutFreeSpace";
    static final String MAGIC_EXT = "WithouFreSpacExt";
    static final int VERSION = 2;
    /** "Ynot": the image is open for writing, or was not closed cleanly. */
    static final int INUSE_MAGIC = 0x746F6E59;
    /** qemu's bound on sectors per cluster (it refuses "Too big cluster" above it). */
    static final long MAX_TRACKS = Integer.MAX_VALUE / 513;
    /** qemu's bound on BAT entries ("Catalog too large"). */
    static final long MAX_BAT_ENTRIES = Integer.MAX_VALUE / 4;
    /** qemu-img create's geometry: 16 heads, 32 sectors per cylinder track. */
    static final int HEADS = 16;
    static final int SECTORS_PER_CYLINDER_TRACK = 32;

    static final int OFF_VERSION = 16;
    static final int OFF_HEADS = 20;
    static final int OFF_CYLINDERS = 24;
    static final int OFF_TRACKS = 28;
    static final int OFF_BAT_ENTRIES = 32;
    static final int OFF_NB_SECTORS = 36;
    static final int OFF_INUSE = 44;
    static final int OFF_DATA_OFF = 48;
    static final int OFF_FLAGS = 52;
    static final int OFF_EXT_OFF = 56;

    /** The header as read: written back with only the inuse field changed. */
    private final byte[] raw;
    /** True for "WithouFreSpacExt": BAT entries count clusters. */
    final boolean extMagic;
    /** Sectors per cluster. */
    final long tracks;
    final long batEntries;
    /** Guest sectors, as qemu reads them (the old magic keeps only the low 32 bits). */
    final long sectors;
    /** In sectors; 0 means "right after the BAT". */
    final long dataOff;
    /** In sectors: where the format extension (dirty bitmaps) lies, or 0. */
    final long extOff;
    boolean inUse;

    private ParallelsHeader(byte[] raw) {
        this.raw = raw;
        ByteBuffer b = le(raw);
        extMagic = startsWith(b, MAGIC_EXT);
        tracks = Integer.toUnsignedLong(b.getInt(OFF_TRACKS));
        batEntries = Integer.toUnsignedLong(b.getInt(OFF_BAT_ENTRIES));
        long nb = b.getLong(OFF_NB_SECTORS);
        sectors = extMagic ? nb : nb & 0xffffffffL;
        inUse = b.getInt(OFF_INUSE) == INUSE_MAGIC;
        dataOff = Integer.toUnsignedLong(b.getInt(OFF_DATA_OFF));
        extOff = b.getLong(OFF_EXT_OFF);
    }

    private static ByteBuffer le(byte[] raw) {
        return ByteBuffer.wrap(raw).order(ByteOrder.LITTLE_ENDIAN);
    }

    private static boolean startsWith(ByteBuffer b, String magic) {
        byte[] m = magic.getBytes(StandardCharsets.US_ASCII);
        if (b.limit() - b.position() < m.length) {
            return false;
        }
        for (int i = 0; i < m.length; i++) {
            if (b.get(b.position() + i) != m[i]) {
                return false;
            }
        }
        return true;
    }

    /** qemu's parallels_probe: either magic and version 2 (its buffer is 512 bytes, zero padded). */
    static boolean probe(ByteBuffer head) {
        if (head.remaining() < BYTES) {
            return false;
        }
        ByteBuffer b = head.duplicate().order(ByteOrder.LITTLE_ENDIAN);
        return (startsWith(b, MAGIC_OLD) || startsWith(b, MAGIC_EXT))
                && b.getInt(b.position() + OFF_VERSION) == VERSION;
    }

    /** Parses and validates a header against a file of {@code fileLength} bytes. */
    static ParallelsHeader read(ByteBuffer head, long fileLength) throws CorruptImageException,
            UnsupportedFeatureException {
        if (head.remaining() < BYTES) {
            throw new CorruptImageException("Parallels header", 0, "file is too short for a header ("
                    + head.remaining() + " of 64 bytes)");
        }
        if (!probe(head)) {
            throw new CorruptImageException("Parallels header", 0, "Image not in Parallels format");
        }
        byte[] raw = new byte[BYTES];
        head.duplicate().get(raw);
        ParallelsHeader h = new ParallelsHeader(raw);
        // qemu's checks, in its order
        if (h.tracks == 0) {
            throw new CorruptImageException("Parallels header", OFF_TRACKS, "Invalid image: Zero sectors per track");
        }
        if (h.tracks > MAX_TRACKS) {
            throw new UnsupportedFeatureException("Invalid image: Too big cluster (" + h.tracks * SECTOR
                    + " bytes; qemu reads at most " + MAX_TRACKS * SECTOR + ")");
        }
        if (h.batEntries > MAX_BAT_ENTRIES) {
            throw new UnsupportedFeatureException("Catalog too large (" + h.batEntries + " BAT entries; qemu reads at "
                    + "most " + MAX_BAT_ENTRIES + ")");
        }
        // bounds qemu does not check
        long batEnd = h.batEnd();
        if (batEnd > fileLength) {
            throw new CorruptImageException("Parallels BAT", BYTES, String.format("the BAT of %d entries ends at "
                    + "0x%x, past the end of the file (%d bytes)", h.batEntries, batEnd, fileLength));
        }
        if (h.dataOff != 0 && h.dataOff * SECTOR < batEnd) {
            throw new CorruptImageException("Parallels header", OFF_DATA_OFF, String.format("data offset 0x%x lies "
                    + "inside the BAT (0x40 to 0x%x)", h.dataOff * SECTOR, batEnd));
        }
        if (h.dataOff * SECTOR > fileLength) {
            throw new CorruptImageException("Parallels header", OFF_DATA_OFF, String.format("data offset 0x%x lies "
                    + "past the end of the file (%d bytes)", h.dataOff * SECTOR, fileLength));
        }
        if (Long.compareUnsigned(h.sectors, h.batEntries * h.tracks) > 0) {
            throw new CorruptImageException("Parallels header", OFF_NB_SECTORS, String.format("the disk of %s "
                    + "sectors is larger than its %d BAT entries of %d sectors can map",
                    Long.toUnsignedString(h.sectors), h.batEntries, h.tracks));
        }
        return h;
    }

    long clusterSize() {
        return tracks * SECTOR;
    }

    long virtualSize() {
        return sectors * SECTOR;
    }

    /** Bytes one BAT entry's value counts: a sector (old magic) or a cluster. */
    long entryUnit() {
        return extMagic ? clusterSize() : SECTOR;
    }

    /** The end of the BAT: the header and 4 bytes per entry. */
    long batEnd() {
        return BYTES + 4 * batEntries;
    }

    /** Where data clusters begin: data_off, or right after the BAT (sector-aligned) when it is 0. */
    long dataStart() {
        return dataOff != 0 ? dataOff * SECTOR : (batEnd() + SECTOR - 1) & -SECTOR;
    }

    /** The header with the inuse field as {@link #inUse} says, every other byte as read. */
    ByteBuffer encode() {
        byte[] out = raw.clone();
        le(out).putInt(OFF_INUSE, inUse ? INUSE_MAGIC : 0);
        return ByteBuffer.wrap(out);
    }

    /**
     * The first sector qemu-img 7.2 create writes: the extended magic,
     * version 2, its geometry (16 heads, cylinders of 32 sectors per head),
     * sectors per cluster, the BAT size, the disk size in sectors, and the
     * data offset (the BAT rounded up to a whole cluster), the rest zero.
     */
    static ByteBuffer qemuFirstSector(long totalSize, long clusterSize) {
        long entries = Math.ceilDiv(totalSize, clusterSize);
        long dataOffSectors = Math.ceilDiv(BYTES + 4 * entries, clusterSize) * clusterSize / SECTOR;
        byte[] raw = new byte[SECTOR];
        ByteBuffer b = le(raw);
        b.put(0, MAGIC_EXT.getBytes(StandardCharsets.US_ASCII));
        b.putInt(OFF_VERSION, VERSION).putInt(OFF_HEADS, HEADS)
                .putInt(OFF_CYLINDERS, (int) (totalSize / SECTOR / HEADS / SECTORS_PER_CYLINDER_TRACK))
                .putInt(OFF_TRACKS, (int) (clusterSize / SECTOR)).putInt(OFF_BAT_ENTRIES, (int) entries)
                .putLong(OFF_NB_SECTORS, Math.ceilDiv(totalSize, SECTOR)).putInt(OFF_DATA_OFF, (int) dataOffSectors);
        return ByteBuffer.wrap(raw);
    }
}
