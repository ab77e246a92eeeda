package io.diskmorph.format.qed;

import io.diskmorph.image.CorruptImageException;
import io.diskmorph.image.UnsupportedFeatureException;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;

/**
 * The QED header (docs/interop/qed_spec.rst, "Header"): 64 little-endian
 * bytes at offset 0, followed (inside the header clusters) by the backing
 * file name. Values are kept raw so that a rewrite preserves bits we do not
 * interpret (compat features).
 */
final class QedHeader {
    static final int MAGIC = 'Q' | 'E' << 8 | 'D' << 16;
    static final int BYTES = 64;

    static final long F_BACKING_FILE = 0x1;
    static final long F_NEED_CHECK = 0x2;
    static final long F_BACKING_FORMAT_NO_PROBE = 0x4;
    static final long KNOWN_FEATURES = F_BACKING_FILE | F_NEED_CHECK | F_BACKING_FORMAT_NO_PROBE;

    static final long MIN_CLUSTER_SIZE = 4096;
    static final long MAX_CLUSTER_SIZE = 64L << 20;
    static final long MIN_TABLE_SIZE = 1;
    static final long MAX_TABLE_SIZE = 16;
    static final long DEFAULT_CLUSTER_SIZE = 65536;
    static final long DEFAULT_TABLE_SIZE = 4;
    /** qemu reads the backing name into a PATH_MAX buffer and refuses names that do not fit with the NUL. */
    static final int MAX_BACKING_NAME = 4095;

    final long clusterSize;
    final long tableSize;
    final long headerSize;
    final long features;
    final long compatFeatures;
    final long autoclearFeatures;
    final long l1TableOffset;
    final long imageSize;
    final long backingNameOffset;
    final long backingNameSize;

    QedHeader(long clusterSize, long tableSize, long headerSize, long features, long compatFeatures,
              long autoclearFeatures, long l1TableOffset, long imageSize, long backingNameOffset,
              long backingNameSize) {
        this.clusterSize = clusterSize;
        this.tableSize = tableSize;
        this.headerSize = headerSize;
        this.features = features;
        this.compatFeatures = compatFeatures;
        this.autoclearFeatures = autoclearFeatures;
        this.l1TableOffset = l1TableOffset;
        this.imageSize = imageSize;
        this.backingNameOffset = backingNameOffset;
        this.backingNameSize = backingNameSize;
    }

    QedHeader withFeatures(long newFeatures) {
        return new QedHeader(clusterSize, tableSize, headerSize, newFeatures, compatFeatures, autoclearFeatures,
                l1TableOffset, imageSize, backingNameOffset, backingNameSize);
    }

    QedHeader withAutoclearFeatures(long newAutoclear) {
        return new QedHeader(clusterSize, tableSize, headerSize, features, compatFeatures, newAutoclear,
                l1TableOffset, imageSize, backingNameOffset, backingNameSize);
    }

    boolean hasBackingFile() {
        return (features & F_BACKING_FILE) != 0;
    }

    boolean needsCheck() {
        return (features & F_NEED_CHECK) != 0;
    }

    /** Bytes of one L1 or L2 table. */
    long tableBytes() {
        return clusterSize * tableSize;
    }

    /** Entries of one table. */
    long tableEntries() {
        return tableBytes() / 8;
    }

    /** Guest bytes one L2 table maps. */
    long l2Coverage() {
        return tableEntries() * clusterSize;
    }

    /** Bytes reserved for the header and its strings: [0, headerZone). */
    long headerZone() {
        return headerSize * clusterSize;
    }

    static boolean isClusterSizeValid(long c) {
        return c >= MIN_CLUSTER_SIZE && c <= MAX_CLUSTER_SIZE && Long.bitCount(c) == 1;
    }

    static boolean isTableSizeValid(long t) {
        return t >= MIN_TABLE_SIZE && t <= MAX_TABLE_SIZE && Long.bitCount(t) == 1;
    }

    /**
     * qemu's qed_max_image_size: (table_size * C / 8)^2 * C computed in
     * uint64. The result is a power of two; when it reaches 2^64 qemu's
     * arithmetic wraps to 0 (so only empty images are valid, e.g. C >= 16 MiB),
     * and we keep that rule so we never accept or create what qemu refuses.
     */
    static long maxImageSize(long clusterSize, long tableSize) {
        int exp = 2 * (Long.numberOfTrailingZeros(tableSize) + Long.numberOfTrailingZeros(clusterSize) - 3)
                + Long.numberOfTrailingZeros(clusterSize);
        if (exp >= 64) {
            return 0;
        }
        return exp >= 63 ? Long.MAX_VALUE : 1L << exp;
    }

    /** qemu's qed_is_image_size_valid: a multiple of 512 and at most the maximum. */
    static boolean isImageSizeValid(long size, long clusterSize, long tableSize) {
        return size >= 0 && size % 512 == 0 && size <= maxImageSize(clusterSize, tableSize);
    }

    /**
     * The file size qemu works with: the length as the block layer reports it
     * (rounded up to 512-byte sectors), rounded down to a cluster. Table and
     * data offsets must lie below it; new clusters are appended at it.
     */
    static long usableFileSize(long fileLength, long clusterSize) {
        long sectors = fileLength + 511 & ~511L;
        return sectors & -clusterSize;
    }

    /** qemu's qed_check_cluster_offset: C-aligned, past the header, below the usable file size. */
    boolean isClusterOffsetValid(long offset, long usableFileSize) {
        return (offset & (clusterSize - 1)) == 0 && offset >= headerZone() && offset < usableFileSize;
    }

    /**
     * qemu's qed_check_table_offset, for the first and last cluster of a table.
     * qemu 7.2 also refuses every table when table_size is 1 (its overflow test
     * is {@code end <= offset}); we follow the spec there, and refuse to create
     * such images instead.
     */
    boolean isTableOffsetValid(long offset, long usableFileSize) {
        if (offset < 0 || offset > Long.MAX_VALUE - tableBytes()) {
            return false;
        }
        long last = offset + (tableSize - 1) * clusterSize;
        return isClusterOffsetValid(offset, usableFileSize) && isClusterOffsetValid(last, usableFileSize);
    }

    /** Parses and validates the header against the file, in qemu's order (bdrv_qed_do_open). */
    static QedHeader read(ByteBuffer raw, long fileLength) throws CorruptImageException, UnsupportedFeatureException {
        if (raw.remaining() < BYTES) {
            throw new CorruptImageException("QED header", 0, "file is too short for a header (" + raw.remaining()
                    + " bytes)");
        }
        ByteBuffer b = raw.slice().order(ByteOrder.LITTLE_ENDIAN);
        if (b.getInt(0) != MAGIC) {
            throw new CorruptImageException("QED header", 0, "not in QED format (bad magic)");
        }
        // qed_spec.rst "Header": u32 magic, cluster_size, table_size, header_size; u64 features,
        // compat_features, autoclear_features, l1_table_offset, image_size; u32 backing name offset, size
        long c = Integer.toUnsignedLong(b.getInt(4));
        long t = Integer.toUnsignedLong(b.getInt(8));
        long h = Integer.toUnsignedLong(b.getInt(12));
        long features = b.getLong(16);
        long compat = b.getLong(24);
        long autoclear = b.getLong(32);
        long l1 = b.getLong(40);
        long size = b.getLong(48);
        long bOff = Integer.toUnsignedLong(b.getInt(56));
        long bLen = Integer.toUnsignedLong(b.getInt(60));

        if ((features & ~KNOWN_FEATURES) != 0) {
            throw new UnsupportedFeatureException(String.format("QED image uses unsupported feature bits 0x%x",
                    features & ~KNOWN_FEATURES));
        }
        if (!isClusterSizeValid(c)) {
            throw new CorruptImageException("QED header", 4, "cluster size " + c
                    + " is not a power of two in [4 KiB, 64 MiB]");
        }
        if (!isTableSizeValid(t)) {
            throw new CorruptImageException("QED header", 8, "table size " + t
                    + " is not a power of two in [1, 16] clusters");
        }
        if (size < 0 || !isImageSizeValid(size, c, t)) {
            throw new CorruptImageException("QED header", 48, "image size " + Long.toUnsignedString(size)
                    + " is not a multiple of 512 within the maximum of " + maxImageSize(c, t) + " bytes");
        }
        // qemu: header_size * cluster_size must fit in uint32. qemu accepts 0, which would leave the
        // header cluster outside the header zone (qemu-img check then calls it leaked); we refuse it.
        if (h == 0 || h > 0xffffffffL / c) {
            throw new CorruptImageException("QED header", 12, "header size of " + h + " clusters is invalid");
        }
        QedHeader hdr = new QedHeader(c, t, h, features, compat, autoclear, l1, size, bOff, bLen);
        if (!hdr.isTableOffsetValid(l1, usableFileSize(fileLength, c))) {
            throw new CorruptImageException("QED header", 40, String.format(
                    "L1 table offset 0x%x is invalid (misaligned, inside the header or past the end of the file)",
                    l1));
        }
        if (hdr.hasBackingFile()) {
            if (bOff + bLen > hdr.headerZone()) {
                throw new CorruptImageException("QED header", 56, String.format(
                        "backing file name (offset %d, %d bytes) lies outside the %d header bytes",
                        bOff, bLen, hdr.headerZone()));
            }
            if (bLen > MAX_BACKING_NAME) {
                throw new CorruptImageException("QED header", 60, "backing file name of " + bLen
                        + " bytes is too long");
            }
        }
        return hdr;
    }

    /** The 64 header bytes. */
    ByteBuffer encode() {
        ByteBuffer b = ByteBuffer.allocate(BYTES).order(ByteOrder.LITTLE_ENDIAN);
        b.putInt(MAGIC).putInt((int) clusterSize).putInt((int) tableSize).putInt((int) headerSize)
                .putLong(features).putLong(compatFeatures).putLong(autoclearFeatures)
                .putLong(l1TableOffset).putLong(imageSize)
                .putInt((int) backingNameOffset).putInt((int) backingNameSize);
        return b.flip();
    }

    /** The stored backing name; qemu reads it as a C string, so a NUL ends it early. */
    static String decodeName(ByteBuffer bytes) {
        ByteBuffer b = bytes.slice();
        for (int i = 0; i < b.remaining(); i++) {
            if (b.get(i) == 0) {
                b.limit(i);
                break;
            }
        }
        return StandardCharsets.UTF_8.decode(b).toString();
    }
}
