package io.diskmorph.format.qcow2;

import io.diskmorph.image.CorruptImageException;
import io.diskmorph.image.UnsupportedFeatureException;
import io.diskmorph.storage.Storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * The qcow2 header (qcow2.rst "Header"), its extensions and the backing file
 * name: decoding with QEMU's validation (block/qcow2.c qcow2_do_open and
 * qcow2_read_extensions), and encoding. Immutable; the image and the layout
 * builder derive changed copies. Header bytes past the fields we know and
 * unknown extensions are kept verbatim.
 */
final class Qcow2Header {
    static final int MAGIC = 0x514649fb;
    static final int V2_LENGTH = 72;
    static final int V3_MIN_LENGTH = 104;
    /** v3 header with the compression type byte and padding, as qemu writes it. */
    static final int V3_LENGTH = 112;

    static final long INCOMPAT_DIRTY = 1L;
    static final long INCOMPAT_CORRUPT = 1L << 1;
    static final long INCOMPAT_DATA_FILE = 1L << 2;
    static final long INCOMPAT_COMPRESSION = 1L << 3;
    static final long INCOMPAT_EXTENDED_L2 = 1L << 4;
    static final long INCOMPAT_KNOWN = 0x1fL;
    static final long COMPAT_LAZY_REFCOUNTS = 1L;
    static final long AUTOCLEAR_BITMAPS = 1L;
    static final long AUTOCLEAR_DATA_FILE_RAW = 1L << 1;

    static final int CRYPT_NONE = 0;
    static final int CRYPT_AES = 1;
    static final int CRYPT_LUKS = 2;
    static final int COMPRESSION_ZLIB = 0;
    static final int COMPRESSION_ZSTD = 1;

    static final int MIN_CLUSTER_BITS = 9;
    static final int MAX_CLUSTER_BITS = 21;
    /** qemu QCOW_MAX_L1_SIZE and QCOW_MAX_REFTABLE_SIZE. */
    static final long MAX_L1_BYTES = 32L << 20;
    static final long MAX_REFTABLE_BYTES = 8L << 20;
    static final int MAX_SNAPSHOTS = 65536;
    static final int SNAPSHOT_HEADER_SIZE = 40;
    static final int MAX_BACKING_NAME = 1023;
    /** qemu keeps the backing format in a 16-byte buffer. */
    static final int MAX_BACKING_FORMAT = 15;
    /** Feature name table entry: type u8, bit u8, name[46]. */
    static final int FEATURE_ENTRY = 48;

    final int version;
    final long backingFileOffset;
    final int backingFileSize;
    final int clusterBits;
    final long size;
    final int cryptMethod;
    final int l1Size;
    final long l1TableOffset;
    final long refcountTableOffset;
    final int refcountTableClusters;
    final int nbSnapshots;
    final long snapshotsOffset;
    final long incompatible;
    final long compatible;
    final long autoclear;
    final int refcountOrder;
    final int headerLength;
    final int compressionType;
    /** v3 header bytes [104, headerLength): compression type, padding, fields of newer versions. */
    private final byte[] tail;
    private final List<HeaderExtension> extensions;
    final String backingFile;

    private Qcow2Header(int version, long backingFileOffset, int backingFileSize, int clusterBits, long size,
                        int cryptMethod, int l1Size, long l1TableOffset, long refcountTableOffset,
                        int refcountTableClusters, int nbSnapshots, long snapshotsOffset, long incompatible,
                        long compatible, long autoclear, int refcountOrder, int headerLength, byte[] tail,
                        List<HeaderExtension> extensions, String backingFile) {
        this.version = version;
        this.backingFileOffset = backingFileOffset;
        this.backingFileSize = backingFileSize;
        this.clusterBits = clusterBits;
        this.size = size;
        this.cryptMethod = cryptMethod;
        this.l1Size = l1Size;
        this.l1TableOffset = l1TableOffset;
        this.refcountTableOffset = refcountTableOffset;
        this.refcountTableClusters = refcountTableClusters;
        this.nbSnapshots = nbSnapshots;
        this.snapshotsOffset = snapshotsOffset;
        this.incompatible = incompatible;
        this.compatible = compatible;
        this.autoclear = autoclear;
        this.refcountOrder = refcountOrder;
        this.headerLength = headerLength;
        this.tail = tail.clone();
        this.compressionType = tail.length > 0 ? tail[0] & 0xff : COMPRESSION_ZLIB;
        this.extensions = List.copyOf(extensions);
        this.backingFile = backingFile;
    }

    /** A fresh header as the layout builder writes it (qemu's field values and extension order). */
    static Qcow2Header create(int version, int clusterBits, long size, int l1Size, long l1TableOffset,
                              long refcountTableOffset, int refcountTableClusters, long incompatible,
                              long compatible, int refcountOrder, int compressionType,
                              List<HeaderExtension> extensions, String backingFile) {
        int length = version == 2 ? V2_LENGTH : V3_LENGTH;
        byte[] tail = new byte[length - Math.min(length, V3_MIN_LENGTH)];
        if (tail.length > 0) {
            tail[0] = (byte) compressionType;
        }
        return new Qcow2Header(version, 0, 0, clusterBits, size, CRYPT_NONE, l1Size, l1TableOffset,
                refcountTableOffset, refcountTableClusters, 0, 0, incompatible, compatible, 0, refcountOrder, length,
                tail, extensions, backingFile);
    }

    long clusterSize() {
        return 1L << clusterBits;
    }

    boolean has(long incompatibleBit) {
        return (incompatible & incompatibleBit) != 0;
    }

    boolean extendedL2() {
        return has(INCOMPAT_EXTENDED_L2);
    }

    List<HeaderExtension> extensions() {
        return extensions;
    }

    /** Data of the first extension of {@code type}, or null. */
    byte[] extension(int type) {
        for (HeaderExtension e : extensions) {
            if (e.type() == type) {
                return e.data();
            }
        }
        return null;
    }

    String backingFormat() {
        byte[] d = extension(HeaderExtension.BACKING_FORMAT);
        return d == null ? null : cString(d);
    }

    String dataFile() {
        byte[] d = extension(HeaderExtension.EXTERNAL_DATA_FILE);
        return d == null ? null : cString(d);
    }

    /**
     * Names from the feature name table of the {@code type} (0 incompatible,
     * 1 compatible, 2 autoclear) bits in {@code mask}.
     */
    String featureNames(int type, long mask) {
        List<String> names = new ArrayList<>();
        long left = mask;
        byte[] table = extension(HeaderExtension.FEATURE_NAME_TABLE);
        if (table != null) {
            for (int off = 0; off + FEATURE_ENTRY <= table.length; off += FEATURE_ENTRY) {
                int bit = table[off + 1] & 0xff;
                if ((table[off] & 0xff) == type && bit < 64 && (left & (1L << bit)) != 0) {
                    names.add(cString(java.util.Arrays.copyOfRange(table, off + 2, off + FEATURE_ENTRY)));
                    left &= ~(1L << bit);
                }
            }
        }
        if (left != 0) {
            names.add(String.format("unknown feature bits 0x%x", left));
        }
        return String.join(", ", names);
    }

    Qcow2Header withRefcountTable(long offset, int clusters) {
        return copy(offset, clusters, autoclear, extensions);
    }

    Qcow2Header withAutoclear(long bits) {
        return copy(refcountTableOffset, refcountTableClusters, bits, extensions);
    }

    Qcow2Header withExtensions(List<HeaderExtension> exts) {
        return copy(refcountTableOffset, refcountTableClusters, autoclear, exts);
    }

    private Qcow2Header copy(long reftableOffset, int reftableClusters, long autoclearBits,
                             List<HeaderExtension> exts) {
        return new Qcow2Header(version, backingFileOffset, backingFileSize, clusterBits, size, cryptMethod, l1Size,
                l1TableOffset, reftableOffset, reftableClusters, nbSnapshots, snapshotsOffset, incompatible,
                compatible, autoclearBits, refcountOrder, headerLength, tail, exts, backingFile);
    }

    /**
     * The header fields alone ({@link #headerLength} bytes): what a rewrite
     * of a field writes, in one write at offset 0, leaving the extensions and
     * the backing file name in place.
     */
    byte[] encodeFields() {
        return encodeFields(backingFileOffset, backingFileSize);
    }

    private byte[] encodeFields(long backingFileOffset, int backingFileSize) {
        ByteBuffer b = ByteBuffer.allocate(headerLength);
        b.putInt(MAGIC).putInt(version).putLong(backingFileOffset).putInt(backingFileSize).putInt(clusterBits)
                .putLong(size).putInt(cryptMethod).putInt(l1Size).putLong(l1TableOffset).putLong(refcountTableOffset)
                .putInt(refcountTableClusters).putInt(nbSnapshots).putLong(snapshotsOffset);
        if (version >= 3) {
            b.putLong(incompatible).putLong(compatible).putLong(autoclear).putInt(refcountOrder).putInt(headerLength)
                    .put(tail);
        }
        return b.array();
    }

    /**
     * Header, extensions, end marker and backing file name, as one byte array
     * (cluster 0 as qemu lays it out). Fails when it does not fit in one cluster.
     */
    byte[] encodeZone() throws UnsupportedFeatureException {
        byte[] name = backingFile == null ? new byte[0] : backingFile.getBytes(StandardCharsets.UTF_8);
        long extLength = 8;
        for (HeaderExtension e : extensions) {
            extLength += e.encodedLength();
        }
        long total = headerLength + extLength + name.length;
        if (total > clusterSize()) {
            throw new UnsupportedFeatureException("qcow2 header, extensions and backing file name (" + total
                    + " bytes) do not fit in one cluster of " + clusterSize() + " bytes");
        }
        ByteBuffer b = ByteBuffer.allocate((int) total);
        long backingOffset = name.length == 0 ? 0 : headerLength + extLength;
        b.put(encodeFields(backingOffset, name.length));
        for (HeaderExtension e : extensions) {
            byte[] d = e.data();
            b.putInt(e.type()).putInt(d.length).put(d);
            b.position(b.position() + (e.encodedLength() - 8 - d.length));
        }
        b.putInt(HeaderExtension.END).putInt(0);
        b.put(name);
        return b.array();
    }

    /** Reads and validates the header of {@code storage}. */
    static Qcow2Header read(Storage storage) throws IOException {
        return read(storage, false);
    }

    /**
     * Reads and validates the header; {@code forCheck} leaves the snapshot
     * table pointer unvalidated and accepts an empty refcount table, like
     * qemu's open for check (the check judges them itself).
     */
    static Qcow2Header read(Storage storage, boolean forCheck) throws IOException {
        long fileSize = storage.size();
        if (fileSize < V2_LENGTH) {
            throw new CorruptImageException("qcow2 header", 0, "file is too short for a qcow2 header (" + fileSize
                    + " bytes)");
        }
        ByteBuffer h = storage.readBytes(0, V3_MIN_LENGTH);
        if (h.getInt(0) != MAGIC) {
            throw new CorruptImageException("qcow2 header", 0, "not a qcow2 image (bad magic)");
        }
        int version = h.getInt(4);
        if (version != 2 && version != 3) {
            throw new UnsupportedFeatureException("unsupported qcow2 version " + Integer.toUnsignedString(version));
        }
        int clusterBits = h.getInt(20);
        if (clusterBits < MIN_CLUSTER_BITS || clusterBits > MAX_CLUSTER_BITS) {
            throw new CorruptImageException("qcow2 header", 20, "cluster_bits " + Integer.toUnsignedString(clusterBits)
                    + " outside " + MIN_CLUSTER_BITS + ".." + MAX_CLUSTER_BITS);
        }
        int clusterSize = 1 << clusterBits;
        long incompatible = 0;
        long compatible = 0;
        long autoclear = 0;
        int refcountOrder = 4;
        int headerLength = V2_LENGTH;
        if (version == 3) {
            incompatible = h.getLong(72);
            compatible = h.getLong(80);
            autoclear = h.getLong(88);
            refcountOrder = h.getInt(96);
            headerLength = h.getInt(100);
            if (Integer.compareUnsigned(headerLength, V3_MIN_LENGTH) < 0) {
                throw new CorruptImageException("qcow2 header", 100, "header_length "
                        + Integer.toUnsignedString(headerLength) + " is shorter than 104");
            }
        }
        if (Integer.compareUnsigned(headerLength, clusterSize) > 0) {
            throw new CorruptImageException("qcow2 header", 100, "header_length "
                    + Integer.toUnsignedString(headerLength) + " exceeds the cluster size " + clusterSize);
        }
        if (headerLength > fileSize) {
            throw new CorruptImageException("qcow2 header", 0, "file is truncated inside the header ("
                    + fileSize + " bytes)");
        }
        ByteBuffer zone = storage.readBytes(0, clusterSize);
        long backingFileOffset = zone.getLong(8);
        int backingFileSize = zone.getInt(16);
        long size = zone.getLong(24);
        int cryptMethod = zone.getInt(32);
        int l1Size = zone.getInt(36);
        long l1TableOffset = zone.getLong(40);
        long refcountTableOffset = zone.getLong(48);
        int refcountTableClusters = zone.getInt(56);
        int nbSnapshots = zone.getInt(60);
        long snapshotsOffset = zone.getLong(64);
        byte[] tail = new byte[Math.max(0, headerLength - V3_MIN_LENGTH)];
        zone.get(V3_MIN_LENGTH, tail);

        if (Long.compareUnsigned(backingFileOffset, clusterSize) > 0) {
            throw new CorruptImageException("qcow2 header", 8, String.format(
                    "backing_file_offset 0x%x lies outside the header cluster", backingFileOffset));
        }
        if (size < 0) {
            throw new CorruptImageException("qcow2 header", 24, "virtual size " + Long.toUnsignedString(size)
                    + " is too large");
        }
        int compressionType = tail.length > 0 ? tail[0] & 0xff : COMPRESSION_ZLIB;
        if (compressionType != COMPRESSION_ZLIB && compressionType != COMPRESSION_ZSTD) {
            throw new UnsupportedFeatureException("qcow2: unknown compression type " + compressionType);
        }
        if ((compressionType == COMPRESSION_ZLIB) == ((incompatible & INCOMPAT_COMPRESSION) != 0)) {
            throw new CorruptImageException("qcow2 header", 72, "compression type incompatible feature bit must "
                    + (compressionType == COMPRESSION_ZLIB ? "not " : "") + "be set");
        }
        if (Integer.compareUnsigned(refcountOrder, 6) > 0) {
            throw new CorruptImageException("qcow2 header", 96, "refcount_order "
                    + Integer.toUnsignedString(refcountOrder) + " is larger than 6 (64-bit refcounts)");
        }
        if ((incompatible & INCOMPAT_EXTENDED_L2) != 0 && clusterBits < 14) {
            throw new CorruptImageException("qcow2 header", 20, "extended L2 entries need clusters of at least "
                    + "16 KiB (subclusters of 512 bytes), cluster size is " + clusterSize);
        }
        if (cryptMethod != CRYPT_NONE && cryptMethod != CRYPT_AES && cryptMethod != CRYPT_LUKS) {
            throw new UnsupportedFeatureException("qcow2: unsupported encryption method "
                    + Integer.toUnsignedString(cryptMethod));
        }
        if (refcountTableClusters == 0 && !forCheck) {
            throw new CorruptImageException("qcow2 header", 56, "image has no refcount table");
        }
        validateTable("refcount table", 56, 48, refcountTableOffset, Integer.toUnsignedLong(refcountTableClusters),
                "clusters", clusterSize, MAX_REFTABLE_BYTES, clusterSize);
        if (!forCheck) {
            validateTable("snapshot table", 60, 64, snapshotsOffset, Integer.toUnsignedLong(nbSnapshots),
                    "snapshots", SNAPSHOT_HEADER_SIZE, (long) SNAPSHOT_HEADER_SIZE * MAX_SNAPSHOTS, clusterSize);
        }
        validateTable("L1 table", 36, 40, l1TableOffset, Integer.toUnsignedLong(l1Size), "entries", 8, MAX_L1_BYTES,
                clusterSize);

        long extEnd = backingFileOffset != 0 ? backingFileOffset : clusterSize;
        List<HeaderExtension> exts = readExtensions(zone, headerLength, extEnd);

        String backingFile = null;
        if (backingFileOffset != 0) {
            if (Integer.compareUnsigned(backingFileSize, MAX_BACKING_NAME) > 0
                    || backingFileSize > clusterSize - backingFileOffset) {
                throw new CorruptImageException("qcow2 header", 16, "backing file name too long ("
                        + Integer.toUnsignedString(backingFileSize) + " bytes)");
            }
            byte[] name = new byte[backingFileSize];
            zone.get((int) backingFileOffset, name);
            backingFile = new String(name, StandardCharsets.UTF_8);
        }
        return new Qcow2Header(version, backingFileOffset, backingFileSize, clusterBits, size, cryptMethod, l1Size,
                l1TableOffset, refcountTableOffset, refcountTableClusters, nbSnapshots, snapshotsOffset, incompatible,
                compatible, autoclear, refcountOrder, headerLength, tail, exts, backingFile);
    }

    /**
     * qemu qcow2_validate_table: entry count within the cap, offset cluster-aligned, no overflow. Errors
     * name the header field at fault: {@code countField} for the size, {@code offsetField} for the offset.
     */
    private static void validateTable(String name, int countField, int offsetField, long offset, long entries,
                                      String unit, long entryLen, long maxBytes, int clusterSize)
            throws CorruptImageException {
        if (entries > maxBytes / entryLen) {
            throw new CorruptImageException("qcow2 header", countField, name + " too large (" + entries + " " + unit
                    + ", limit " + maxBytes + " bytes)");
        }
        if (offset < 0 || Long.MAX_VALUE - entries * entryLen < offset || (offset & (clusterSize - 1)) != 0) {
            throw new CorruptImageException("qcow2 header", offsetField, String.format("%s offset 0x%x is invalid "
                    + "(not cluster-aligned or out of range)", name, offset));
        }
    }

    private static List<HeaderExtension> readExtensions(ByteBuffer zone, int start, long end)
            throws IOException {
        List<HeaderExtension> exts = new ArrayList<>();
        long off = start;
        while (off < end) {
            if (off + 8 > end) {
                throw new CorruptImageException("qcow2 header extension", off, "extension header crosses the end "
                        + "of the header area");
            }
            int type = zone.getInt((int) off);
            long len = Integer.toUnsignedLong(zone.getInt((int) off + 4));
            off += 8;
            if (len > end - off) {
                throw new CorruptImageException("qcow2 header extension", off - 8, String.format(
                        "extension 0x%08x too large (%d bytes)", type, len));
            }
            if (type == HeaderExtension.END) {
                break;
            }
            byte[] data = new byte[(int) len];
            zone.get((int) off, data);
            validateExtension(type, data, off - 8);
            exts.add(new HeaderExtension(type, data));
            off += (len + 7) & ~7L;
        }
        return exts;
    }

    private static void validateExtension(int type, byte[] data, long at) throws CorruptImageException {
        switch (type) {
            case HeaderExtension.BACKING_FORMAT -> {
                if (data.length > MAX_BACKING_FORMAT) {
                    throw new CorruptImageException("qcow2 backing format extension", at, "format name too long ("
                            + data.length + " bytes)");
                }
            }
            case HeaderExtension.BITMAPS -> {
                if (data.length != 24) {
                    throw new CorruptImageException("qcow2 bitmaps extension", at, "invalid length " + data.length);
                }
            }
            case HeaderExtension.FULL_DISK_ENCRYPTION -> {
                if (data.length != 16) {
                    throw new CorruptImageException("qcow2 encryption header extension", at, "invalid length "
                            + data.length);
                }
            }
            default -> {
            }
        }
    }

    /** Bytes up to the first NUL (qemu treats names as C strings). */
    static String cString(byte[] b) {
        int n = 0;
        while (n < b.length && b[n] != 0) {
            n++;
        }
        return new String(b, 0, n, StandardCharsets.UTF_8);
    }

    /**
     * qemu's feature name table for v3 images (qcow2_update_header): the
     * incompatible, compatible and autoclear bits qemu 7.2 knows.
     */
    static HeaderExtension featureNameTable() {
        Object[][] features = {
                {0, 0, "dirty bit"}, {0, 1, "corrupt bit"}, {0, 2, "external data file"},
                {0, 3, "compression type"}, {0, 4, "extended L2 entries"}, {1, 0, "lazy refcounts"},
                {2, 0, "bitmaps"}, {2, 1, "raw external data"}};
        ByteBuffer b = ByteBuffer.allocate(features.length * FEATURE_ENTRY);
        for (Object[] f : features) {
            int at = b.position();
            b.put((byte) (int) (Integer) f[0]).put((byte) (int) (Integer) f[1])
                    .put(((String) f[2]).getBytes(StandardCharsets.US_ASCII));
            b.position(at + FEATURE_ENTRY);
        }
        return new HeaderExtension(HeaderExtension.FEATURE_NAME_TABLE, b.array());
    }
}
