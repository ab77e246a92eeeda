package io.diskmorph.format.vpc;

import io.diskmorph.image.CorruptImageException;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;

/**
 * The 1024-byte dynamic disk header ("cxsparse") of dynamic and
 * differencing VHDs, big endian, at the footer's data offset: where the BAT
 * lies, how many entries it has, the block size, and for a differencing
 * image its parent. Validated as qemu 7.2's vpc_open validates it, plus the
 * bounds qemu leaves to chance (a BAT that overflows or lies past the file).
 */
final class VpcDynamicHeader {
    static final int BYTES = 1024;
    static final byte[] COOKIE = "cxsparse".getBytes(StandardCharsets.US_ASCII);
    static final int OFF_TABLE_OFFSET = 16;
    static final int OFF_MAX_ENTRIES = 28;
    static final int OFF_BLOCK_SIZE = 32;
    static final int OFF_CHECKSUM = 36;
    static final int OFF_PARENT_UUID = 40;
    static final int OFF_PARENT_NAME = 64;
    static final int OFF_LOCATORS = 576;
    static final int LOCATOR_BYTES = 24;
    /** Platform codes of the parent locators diskmorph follows: a relative and an absolute Windows path (UTF-16LE). */
    static final int W2RU = 0x57327275;
    static final int W2KU = 0x57326b75;
    /** qemu-img create's block size, the only one it writes. */
    static final int QEMU_BLOCK_SIZE = 2 << 20;

    final long offset;
    final long batOffset;
    final long maxTableEntries;
    final long blockSize;
    /** Bytes of the sector bitmap in front of each block, rounded up to a sector. */
    final long bitmapSize;
    final boolean checksumValid;
    private final byte[] bytes;

    private VpcDynamicHeader(long offset, byte[] bytes) {
        this.offset = offset;
        this.bytes = bytes;
        ByteBuffer b = ByteBuffer.wrap(bytes);
        this.batOffset = b.getLong(OFF_TABLE_OFFSET);
        this.maxTableEntries = Integer.toUnsignedLong(b.getInt(OFF_MAX_ENTRIES));
        this.blockSize = Integer.toUnsignedLong(b.getInt(OFF_BLOCK_SIZE));
        this.bitmapSize = ((blockSize / (8 * 512)) + 511) & ~511L;
        this.checksumValid = b.getInt(OFF_CHECKSUM) == VpcFooter.checksum(bytes, OFF_CHECKSUM);
    }

    /**
     * Parses and validates the header read at {@code offset} against the
     * virtual size and the file's length: qemu's checks with its messages
     * where it has one.
     */
    static VpcDynamicHeader read(ByteBuffer src, long offset, long virtualSize, long fileLength)
            throws CorruptImageException {
        byte[] b = new byte[BYTES];
        src.duplicate().get(b, 0, Math.min(BYTES, src.remaining()));
        for (int i = 0; i < COOKIE.length; i++) {
            if (b[i] != COOKIE[i]) {
                throw new CorruptImageException("VHD dynamic header", offset, "Invalid header magic (no 'cxsparse' "
                        + "at the footer's data offset)");
            }
        }
        VpcDynamicHeader h = new VpcDynamicHeader(offset, b);
        if (h.blockSize < 512 || Long.bitCount(h.blockSize) != 1) {
            throw new CorruptImageException("VHD dynamic header", offset + OFF_BLOCK_SIZE, "Invalid block size "
                    + h.blockSize);
        }
        if (virtualSize / h.blockSize > 0xffffffffL) {
            throw new CorruptImageException("VHD dynamic header", offset + OFF_BLOCK_SIZE, "Too many blocks");
        }
        // both factors are u32: their product can pass 2^63, which is as good as "enough"
        long covered = h.maxTableEntries != 0 && h.blockSize > Long.MAX_VALUE / h.maxTableEntries ? Long.MAX_VALUE
                : h.maxTableEntries * h.blockSize;
        if (covered < virtualSize) {
            throw new CorruptImageException("VHD dynamic header", offset + OFF_MAX_ENTRIES, "Page table too small ("
                    + h.maxTableEntries + " entries of " + h.blockSize + " bytes for a disk of " + virtualSize + ")");
        }
        if (h.maxTableEntries > Integer.MAX_VALUE / 4) {
            throw new CorruptImageException("VHD dynamic header", offset + OFF_MAX_ENTRIES, "Max Table Entries too "
                    + "large (" + h.maxTableEntries + ")");
        }
        // qemu reads the BAT wherever it says; past the file it would read zeros as block 0 entries
        if (h.batOffset < 0 || h.batOffset % 512 != 0 || h.batOffset > fileLength - h.maxTableEntries * 4) {
            throw new CorruptImageException("VHD dynamic header", offset + OFF_TABLE_OFFSET, String.format(
                    "the BAT (0x%x, %d entries) is not a sector-aligned range inside the file (%d bytes)",
                    h.batOffset, h.maxTableEntries, fileLength));
        }
        return h;
    }

    /** The end of the BAT rounded up to a sector: where qemu places the first block of an empty image. */
    long batEnd() {
        return (batOffset + maxTableEntries * 4 + 511) & ~511L;
    }

    /** The parent's name (UTF-16 big endian, up to the first NUL), "" when none. */
    String parentName() {
        int end = OFF_PARENT_NAME;
        while (end + 1 < OFF_PARENT_NAME + 512 && (bytes[end] != 0 || bytes[end + 1] != 0)) {
            end += 2;
        }
        return new String(bytes, OFF_PARENT_NAME, end - OFF_PARENT_NAME, StandardCharsets.UTF_16BE);
    }

    byte[] parentUuid() {
        return java.util.Arrays.copyOfRange(bytes, OFF_PARENT_UUID, OFF_PARENT_UUID + 16);
    }

    /** One of the eight parent locator entries: where a platform-specific path to the parent lies in the file. */
    record Locator(int platformCode, long dataLength, long dataOffset) {
    }

    Locator locator(int i) {
        ByteBuffer b = ByteBuffer.wrap(bytes);
        int at = OFF_LOCATORS + i * LOCATOR_BYTES;
        return new Locator(b.getInt(at), Integer.toUnsignedLong(b.getInt(at + 8)), b.getLong(at + 16));
    }

    byte[] bytes() {
        return bytes.clone();
    }

    /** A header as qemu-img create writes it: BAT at {@code batOffset}, no parent. */
    static byte[] create(long batOffset, long entries, long blockSize) {
        ByteBuffer b = ByteBuffer.allocate(BYTES);
        b.put(0, COOKIE);
        b.putLong(8, -1L); // next structure: none (all 64 bits set, as Microsoft's tools expect)
        b.putLong(OFF_TABLE_OFFSET, batOffset);
        b.putInt(24, 0x00010000);
        b.putInt(OFF_MAX_ENTRIES, (int) entries);
        b.putInt(OFF_BLOCK_SIZE, (int) blockSize);
        b.putInt(OFF_CHECKSUM, VpcFooter.checksum(b.array(), OFF_CHECKSUM));
        return b.array();
    }
}
