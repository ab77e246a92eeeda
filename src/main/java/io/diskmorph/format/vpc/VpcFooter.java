package io.diskmorph.format.vpc;

import io.diskmorph.image.CorruptImageException;
import io.diskmorph.image.UnsupportedFeatureException;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * The 512-byte VHD footer ("hard disk footer" in Microsoft's spec), big
 * endian: at the end of every VHD, and copied to offset 0 of dynamic and
 * differencing images. The raw bytes are kept, so a footer is written back
 * exactly as it was read (qemu rewrites its footer buffer as read, too).
 */
final class VpcFooter {
    static final int BYTES = 512;
    static final byte[] COOKIE = "conectix".getBytes(StandardCharsets.US_ASCII);

    static final int TYPE_FIXED = 2;
    static final int TYPE_DYNAMIC = 3;
    static final int TYPE_DIFFERENCING = 4;

    static final int OFF_DATA_OFFSET = 16;
    static final int OFF_TIMESTAMP = 24;
    static final int OFF_CREATOR_APP = 28;
    static final int OFF_ORIGINAL_SIZE = 40;
    static final int OFF_CURRENT_SIZE = 48;
    static final int OFF_CYLINDERS = 56;
    static final int OFF_HEADS = 58;
    static final int OFF_SECTORS = 59;
    static final int OFF_TYPE = 60;
    static final int OFF_CHECKSUM = 64;
    static final int OFF_UUID = 68;

    /** qemu's VHD_MAX_SECTORS: 2040 GiB, the largest disk qemu opens or creates. */
    static final long MAX_SECTORS = 0xff000000L;
    /** 65535 cylinders x 16 heads x 255 sectors: the largest CHS geometry (VHD_MAX_GEOMETRY). */
    static final long MAX_GEOMETRY = 65535L * 16 * 255;
    /** Seconds from the Unix epoch to 2000-01-01 00:00:00 UTC, the footer's time base. */
    static final long TIMESTAMP_BASE = 946684800L;

    private final byte[] bytes;

    private VpcFooter(byte[] bytes) {
        this.bytes = bytes;
    }

    /** Wraps 512 bytes without judging them (see {@link #hasCookie}, {@link #checksumValid}). */
    static VpcFooter of(ByteBuffer src) {
        byte[] b = new byte[BYTES];
        src.duplicate().get(b, 0, Math.min(BYTES, src.remaining()));
        return new VpcFooter(b);
    }

    static boolean hasCookie(ByteBuffer head) {
        if (head.remaining() < COOKIE.length) {
            return false;
        }
        for (int i = 0; i < COOKIE.length; i++) {
            if (head.get(head.position() + i) != COOKIE[i]) {
                return false;
            }
        }
        return true;
    }

    boolean hasCookie() {
        return hasCookie(ByteBuffer.wrap(bytes));
    }

    /** One's complement of the byte sum, the checksum field counted as zero (footer and dynamic header alike). */
    static int checksum(byte[] b, int checksumOffset) {
        int sum = 0;
        for (int i = 0; i < b.length; i++) {
            if (i < checksumOffset || i >= checksumOffset + 4) {
                sum += b[i] & 0xff;
            }
        }
        return ~sum;
    }

    int storedChecksum() {
        return ByteBuffer.wrap(bytes).getInt(OFF_CHECKSUM);
    }

    boolean checksumValid() {
        return storedChecksum() == checksum(bytes, OFF_CHECKSUM);
    }

    long dataOffset() {
        return ByteBuffer.wrap(bytes).getLong(OFF_DATA_OFFSET);
    }

    String creatorApp() {
        return new String(bytes, OFF_CREATOR_APP, 4, StandardCharsets.ISO_8859_1);
    }

    long currentSize() {
        return ByteBuffer.wrap(bytes).getLong(OFF_CURRENT_SIZE);
    }

    int cylinders() {
        return ByteBuffer.wrap(bytes).getShort(OFF_CYLINDERS) & 0xffff;
    }

    int heads() {
        return bytes[OFF_HEADS] & 0xff;
    }

    int sectorsPerTrack() {
        return bytes[OFF_SECTORS] & 0xff;
    }

    long chsSectors() {
        return (long) cylinders() * heads() * sectorsPerTrack();
    }

    int type() {
        return ByteBuffer.wrap(bytes).getInt(OFF_TYPE);
    }

    byte[] uuid() {
        return Arrays.copyOfRange(bytes, OFF_UUID, OFF_UUID + 16);
    }

    byte[] bytes() {
        return bytes.clone();
    }

    ByteBuffer buffer() {
        return ByteBuffer.wrap(bytes.clone());
    }

    /**
     * Whether the disk's size is its CHS geometry (Virtual PC, qemu with
     * "qemu") or current_size (Hyper-V "win ", qemu's force_size "qem2",
     * Disk2vhd "d2v ", XenConverter "CTXS", XenServer "tap\0"): qemu 7.2's
     * vpc_open table. The largest geometry always means current_size.
     */
    boolean sizeFromGeometry() {
        String app = creatorApp();
        boolean chs = !app.equals("win ") && !app.equals("qem2") && !app.equals("d2v ") && !app.equals("CTXS")
                && !app.equals("tap\0");
        return chs && chsSectors() != MAX_GEOMETRY;
    }

    /** The virtual size as qemu 7.2 computes it (whole sectors); refuses what it refuses ("File too large"). */
    long virtualSize(String file) throws UnsupportedFeatureException, CorruptImageException {
        long sectors = sizeFromGeometry() ? chsSectors() : Long.divideUnsigned(currentSize(), 512);
        if (Long.compareUnsigned(sectors, MAX_SECTORS) > 0) {
            throw new UnsupportedFeatureException(file + ": VHD disk size " + Long.toUnsignedString(sectors * 512)
                    + " is over 2040 GiB, the most qemu opens (File too large)");
        }
        return sectors * 512;
    }

    /** Sets the checksum field from the other bytes. */
    private void seal() {
        ByteBuffer.wrap(bytes).putInt(OFF_CHECKSUM, checksum(bytes, OFF_CHECKSUM));
    }

    /**
     * A footer as qemu-img 7.2 create writes it: creator "qemu" (size from
     * the geometry) or, with force_size, "qem2" and the largest geometry;
     * Virtual PC 2007's version 5.3 on "Wi2k"; original and current size
     * equal.
     */
    static VpcFooter create(long size, int[] chs, boolean forceSize, int type, long timestampSeconds, byte[] uuid) {
        ByteBuffer b = ByteBuffer.allocate(BYTES);
        b.put(0, COOKIE);
        b.putInt(8, 0x02); // features: reserved bit, always set
        b.putInt(12, 0x00010000); // file format version 1.0
        b.putLong(OFF_DATA_OFFSET, type == TYPE_FIXED ? -1L : BYTES);
        b.putInt(OFF_TIMESTAMP, (int) (timestampSeconds - TIMESTAMP_BASE));
        b.put(OFF_CREATOR_APP, (forceSize ? "qem2" : "qemu").getBytes(StandardCharsets.US_ASCII));
        b.putShort(32, (short) 5);
        b.putShort(34, (short) 3);
        b.put(36, "Wi2k".getBytes(StandardCharsets.US_ASCII));
        b.putLong(OFF_ORIGINAL_SIZE, size);
        b.putLong(OFF_CURRENT_SIZE, size);
        b.putShort(OFF_CYLINDERS, (short) chs[0]);
        b.put(OFF_HEADS, (byte) chs[1]);
        b.put(OFF_SECTORS, (byte) chs[2]);
        b.putInt(OFF_TYPE, type);
        b.put(OFF_UUID, uuid);
        VpcFooter f = new VpcFooter(b.array());
        f.seal();
        return f;
    }

    /**
     * The geometry of Microsoft's VHD spec (appendix, "CHS calculation"),
     * as qemu's calculate_geometry applies it: {cylinders, heads, sectors}.
     */
    static int[] geometry(long totalSectors) {
        long total = Math.min(totalSectors, MAX_GEOMETRY);
        int spt;
        int heads;
        long cylTimesHeads;
        if (total >= 65535L * 16 * 63) {
            spt = 255;
            heads = 16;
            cylTimesHeads = total / spt;
        } else {
            spt = 17;
            cylTimesHeads = total / spt;
            heads = (int) Math.max(4, Math.ceilDiv(cylTimesHeads, 1024));
            if (cylTimesHeads >= heads * 1024L || heads > 16) {
                spt = 31;
                heads = 16;
                cylTimesHeads = total / spt;
            }
            if (cylTimesHeads >= heads * 1024L) {
                spt = 63;
                heads = 16;
                cylTimesHeads = total / spt;
            }
        }
        return new int[]{(int) (cylTimesHeads / heads), heads, spt};
    }

    /**
     * qemu-img create's sizing: without force_size the smallest geometry
     * that holds the requested sectors (qemu rounds up, never down), and the
     * disk is that geometry's size, unless it is the largest geometry, which
     * means the size itself. Returns {cylinders, heads, sectors, disk bytes}.
     */
    static long[] createGeometry(long sizeBytes, boolean forceSize) {
        long requested = sizeBytes / 512;
        int[] chs;
        if (forceSize) {
            chs = new int[]{65535, 16, 255};
        } else {
            long total = Math.min(MAX_GEOMETRY, requested);
            chs = new int[]{0, 0, 0};
            for (long i = 0; total > (long) chs[0] * chs[1] * chs[2]; i++) {
                chs = geometry(total + i);
            }
        }
        long sectors = (long) chs[0] * chs[1] * chs[2];
        long disk = sectors == MAX_GEOMETRY ? sizeBytes : sectors * 512;
        return new long[]{chs[0], chs[1], chs[2], disk};
    }
}
