package io.diskmorph.format.qcow;

import io.diskmorph.image.CorruptImageException;
import io.diskmorph.image.ImageException;
import io.diskmorph.image.UnsupportedFeatureException;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * The 48-byte big-endian qcow version 1 header, with the checks qemu 7.2's
 * qcow_open makes (in its order, with its words where it has them) and the
 * bounds it leaves to reads that return zeros past the end of the file
 * (an L1 table or backing file name past the end), refused here as
 * corruption. Encrypted images (AES, crypt_method 1) are refused by name.
 */
final class QcowHeader {
    static final int MAGIC = 0x514649FB; // "QFI\xfb"
    static final int VERSION = 1;
    static final int BYTES = 48;
    /** qemu's bound on the stored backing file name. */
    static final int MAX_BACKING_NAME = 1023;
    static final int MIN_CLUSTER_BITS = 9;
    static final int MAX_CLUSTER_BITS = 16;
    static final int MIN_L2_BITS = 6;
    static final int MAX_L2_BITS = 13;
    static final int CRYPT_NONE = 0;
    static final int CRYPT_AES = 1;
    static final int OFF_MTIME = 20;
    static final int OFF_L1_TABLE = 40;

    final long backingFileOffset;
    final int backingFileSize;
    final int mtime;
    /** The size field as stored; the disk is its whole 512-byte sectors, as qemu reads it. */
    final long size;
    final int clusterBits;
    final int l2Bits;
    final int cryptMethod;
    final long l1TableOffset;

    QcowHeader(long backingFileOffset, int backingFileSize, int mtime, long size, int clusterBits, int l2Bits,
               int cryptMethod, long l1TableOffset) {
        this.backingFileOffset = backingFileOffset;
        this.backingFileSize = backingFileSize;
        this.mtime = mtime;
        this.size = size;
        this.clusterBits = clusterBits;
        this.l2Bits = l2Bits;
        this.cryptMethod = cryptMethod;
        this.l1TableOffset = l1TableOffset;
    }

    long clusterSize() {
        return 1L << clusterBits;
    }

    /** Entries of one L2 table. */
    long l2Entries() {
        return 1L << l2Bits;
    }

    int l2TableBytes() {
        return 8 << l2Bits;
    }

    /** Guest bytes one L2 table maps. */
    long l2Coverage() {
        return 1L << (clusterBits + l2Bits);
    }

    /** qemu's total_sectors * 512: a size that is not whole sectors loses its tail. */
    long virtualSize() {
        return size & ~511L;
    }

    /** qemu's l1_size: the L1 length is not stored, it follows from the size. */
    long l1Entries() {
        return l1Entries(size, clusterBits + l2Bits);
    }

    static long l1Entries(long size, int shift) {
        return (size + (1L << shift) - 1) >>> shift;
    }

    long l1Bytes() {
        return l1Entries() * 8;
    }

    boolean hasBackingFile() {
        return backingFileOffset != 0;
    }

    /** Bit 63 of an L2 entry: the cluster is deflated. */
    static final long COMPRESSED = 1L << 63;

    /** Offset part of a compressed entry: the bits below the size field. */
    long compressedOffsetMask() {
        return (1L << (63 - clusterBits)) - 1;
    }

    long compressedOffset(long entry) {
        return entry & compressedOffsetMask();
    }

    /** Bytes of deflate stream a compressed entry names (the size field, cluster_bits wide below bit 63). */
    int compressedBytes(long entry) {
        return (int) ((entry >>> (63 - clusterBits)) & (clusterSize() - 1));
    }

    long compressedEntry(long hostOffset, int bytes) {
        return COMPRESSED | ((long) bytes << (63 - clusterBits)) | hostOffset;
    }

    /**
     * Parses and judges a header: {@code head} holds the file's first bytes
     * (at most {@link #BYTES} are looked at), {@code fileLength} bounds the
     * tables and name.
     */
    static QcowHeader read(ByteBuffer head, long fileLength) throws ImageException {
        if (head.remaining() < BYTES) {
            throw new CorruptImageException("qcow header", 0, "the file is too short for a header (" + fileLength
                    + " bytes, a header has 48)");
        }
        ByteBuffer b = head.slice().order(ByteOrder.BIG_ENDIAN);
        if (b.getInt(0) != MAGIC) {
            throw new CorruptImageException("qcow header", 0, "Image not in qcow format");
        }
        int version = b.getInt(4);
        if (version != VERSION) {
            throw new UnsupportedFeatureException("qcow version " + Integer.toUnsignedString(version)
                    + " is not supported (qcow version 1 only; qcow2 has version 2 or 3)");
        }
        QcowHeader h = new QcowHeader(b.getLong(8), b.getInt(16), b.getInt(OFF_MTIME), b.getLong(24),
                b.get(32) & 0xff, b.get(33) & 0xff, b.getInt(36), b.getLong(OFF_L1_TABLE));
        if (Long.compareUnsigned(h.size, 1) <= 0) {
            throw new CorruptImageException("qcow header", 24, "Image size is too small (must be at least 2 bytes)");
        }
        if (h.clusterBits < MIN_CLUSTER_BITS || h.clusterBits > MAX_CLUSTER_BITS) {
            throw new CorruptImageException("qcow header", 32, "Cluster size must be between 512 and 64k (cluster_bits "
                    + h.clusterBits + ")");
        }
        if (h.l2Bits < MIN_L2_BITS || h.l2Bits > MAX_L2_BITS) {
            throw new CorruptImageException("qcow header", 33, "L2 table size must be between 512 and 64k (l2_bits "
                    + h.l2Bits + ")");
        }
        if (h.cryptMethod != CRYPT_NONE) {
            if (h.cryptMethod == CRYPT_AES) {
                throw new UnsupportedFeatureException("encrypted qcow images (AES, crypt_method 1) are not supported: "
                        + "decrypt it with qemu-img convert first");
            }
            throw new CorruptImageException("qcow header", 36, "invalid encryption method in qcow header ("
                    + Integer.toUnsignedString(h.cryptMethod) + ")");
        }
        int shift = h.clusterBits + h.l2Bits;
        // qemu: size > UINT64_MAX - 2^shift, or more L1 entries than INT_MAX / 8
        if (Long.compareUnsigned(h.size, -1L - (1L << shift)) > 0 || h.size < 0
                || h.l1Entries() > Integer.MAX_VALUE / 8) {
            throw new CorruptImageException("qcow header", 24, "Image too large (" + Long.toUnsignedString(h.size)
                    + " bytes: more L1 entries than qemu allows)");
        }
        if (h.l1TableOffset < 0 || h.l1TableOffset > fileLength - h.l1Bytes()) {
            throw new CorruptImageException("qcow header", OFF_L1_TABLE, String.format("the L1 table at 0x%x (%d "
                    + "bytes) lies past the end of the file (%d bytes)", h.l1TableOffset, h.l1Bytes(), fileLength));
        }
        if (h.hasBackingFile()) {
            if (Integer.toUnsignedLong(h.backingFileSize) > MAX_BACKING_NAME) {
                throw new CorruptImageException("qcow header", 16, "Backing file name too long ("
                        + Integer.toUnsignedString(h.backingFileSize) + " bytes, at most 1023)");
            }
            if (h.backingFileOffset < 0 || h.backingFileOffset > fileLength - h.backingFileSize) {
                throw new CorruptImageException("qcow header", 8, String.format("the backing file name at 0x%x "
                        + "(%d bytes) lies past the end of the file (%d bytes)", h.backingFileOffset,
                        h.backingFileSize, fileLength));
            }
        }
        return h;
    }

    /** The header as stored (big endian, padding zero). */
    ByteBuffer encode() {
        ByteBuffer b = ByteBuffer.allocate(BYTES).order(ByteOrder.BIG_ENDIAN);
        b.putInt(MAGIC).putInt(VERSION).putLong(backingFileOffset).putInt(backingFileSize).putInt(mtime)
                .putLong(size).put((byte) clusterBits).put((byte) l2Bits).putShort((short) 0).putInt(cryptMethod)
                .putLong(l1TableOffset);
        return b.flip();
    }

    QcowHeader withL1TableOffset(long offset) {
        return new QcowHeader(backingFileOffset, backingFileSize, mtime, size, clusterBits, l2Bits, cryptMethod,
                offset);
    }
}
