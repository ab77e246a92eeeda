package io.diskmorph.format.vdi;

import io.diskmorph.image.CorruptImageException;
import io.diskmorph.image.UnsupportedFeatureException;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * The 512-byte VDI header (pre-header text and signature, then VirtualBox's
 * version 1.1 header), little endian, with the checks qemu 7.2's vdi_open
 * makes, in its order and with its words, and the bounds it skips (a block
 * map inside the header or running into the data area, a map or data area
 * past 4 GiB of offsets is impossible: they are u32) as corruption.
 */
final class VdiHeader {
    static final int BYTES = 512;
    static final int SIGNATURE = 0xbeda107f;
    static final int VERSION_1_1 = 0x00010001;
    static final int TYPE_DYNAMIC = 1;
    static final int TYPE_STATIC = 2;
    static final int SECTOR = 512;
    /** The only block size qemu reads (its DEFAULT_CLUSTER_SIZE). */
    static final int BLOCK_SIZE = 1 << 20;
    /** qemu's VDI_BLOCKS_IN_IMAGE_MAX: map entries are u32 and the map's byte size must fit one too. */
    static final long MAX_BLOCKS = 0x3fffffffL;
    static final long MAX_DISK_SIZE = MAX_BLOCKS * BLOCK_SIZE;
    /** What qemu writes into the text field of images it creates. */
    static final String QEMU_TEXT = "<<< QEMU VM Virtual Disk Image >>>\n";

    // field offsets
    static final int OFF_SIGNATURE = 0x40;
    static final int OFF_VERSION = 0x44;
    static final int OFF_HEADER_SIZE = 0x48;
    static final int OFF_TYPE = 0x4c;
    static final int OFF_BMAP = 0x154;
    static final int OFF_DATA = 0x158;
    static final int OFF_SECTOR_SIZE = 0x168;
    static final int OFF_DISK_SIZE = 0x170;
    static final int OFF_BLOCK_SIZE = 0x178;
    static final int OFF_BLOCK_EXTRA = 0x17c;
    static final int OFF_BLOCKS = 0x180;
    static final int OFF_ALLOCATED = 0x184;
    static final int OFF_UUID_IMAGE = 0x188;
    static final int OFF_UUID_LAST_SNAP = 0x198;
    static final int OFF_UUID_LINK = 0x1a8;
    static final int OFF_UUID_PARENT = 0x1b8;

    /** The header as read: written back with only blocks_allocated changed, so every other byte stays. */
    private final byte[] raw;
    final int imageType;
    final long offsetBmap;
    final long offsetData;
    /** As stored; qemu rounds an odd size up to a sector ({@link #virtualSize()}). */
    final long diskSize;
    final long blocksInImage;
    /** Host blocks in use: the next new block goes at offsetData + blocksAllocated * block size. */
    long blocksAllocated;

    private VdiHeader(byte[] raw) {
        this.raw = raw;
        ByteBuffer b = le(raw);
        imageType = b.getInt(OFF_TYPE);
        offsetBmap = Integer.toUnsignedLong(b.getInt(OFF_BMAP));
        offsetData = Integer.toUnsignedLong(b.getInt(OFF_DATA));
        diskSize = b.getLong(OFF_DISK_SIZE);
        blocksInImage = Integer.toUnsignedLong(b.getInt(OFF_BLOCKS));
        blocksAllocated = Integer.toUnsignedLong(b.getInt(OFF_ALLOCATED));
    }

    private static ByteBuffer le(byte[] raw) {
        return ByteBuffer.wrap(raw).order(ByteOrder.LITTLE_ENDIAN);
    }

    /**
     * Parses and validates a header. {@code fileLength} bounds the block map,
     * which must lie inside the file (qemu reads zeros past the end, which
     * would map every block to host block 0).
     */
    static VdiHeader read(ByteBuffer head, long fileLength) throws CorruptImageException, UnsupportedFeatureException {
        if (head.remaining() < BYTES) {
            throw new CorruptImageException("VDI header", 0, "file is too short for a header (" + head.remaining()
                    + " of 512 bytes)");
        }
        byte[] raw = new byte[BYTES];
        head.duplicate().get(raw);
        VdiHeader h = new VdiHeader(raw);
        ByteBuffer b = le(raw);
        long disk = h.diskSize;
        // qemu's checks, in its order
        if (Long.compareUnsigned(disk, MAX_DISK_SIZE) > 0) {
            throw new UnsupportedFeatureException(String.format("Unsupported VDI image size (size is 0x%x, max "
                    + "supported is 0x%x)", disk, MAX_DISK_SIZE));
        }
        int signature = b.getInt(OFF_SIGNATURE);
        if (signature != SIGNATURE) {
            throw new CorruptImageException("VDI header", OFF_SIGNATURE, String.format("Image not in VDI format "
                    + "(bad signature %08x)", signature));
        }
        int version = b.getInt(OFF_VERSION);
        if (version != VERSION_1_1) {
            throw new UnsupportedFeatureException(String.format("unsupported VDI image (version %d.%d): diskmorph "
                    + "reads version 1.1, as qemu", version >>> 16, version & 0xffff));
        }
        if (h.offsetBmap % SECTOR != 0) {
            throw new UnsupportedFeatureException(String.format("unsupported VDI image (unaligned block map offset "
                    + "0x%x)", h.offsetBmap));
        }
        if (h.offsetData % SECTOR != 0) {
            throw new UnsupportedFeatureException(String.format("unsupported VDI image (unaligned data offset 0x%x)",
                    h.offsetData));
        }
        int sectorSize = b.getInt(OFF_SECTOR_SIZE);
        if (sectorSize != SECTOR) {
            throw new UnsupportedFeatureException("unsupported VDI image (sector size "
                    + Integer.toUnsignedString(sectorSize) + " is not 512)");
        }
        int blockSize = b.getInt(OFF_BLOCK_SIZE);
        if (blockSize != BLOCK_SIZE) {
            throw new UnsupportedFeatureException("unsupported VDI image (block size "
                    + Integer.toUnsignedString(blockSize) + " is not 1048576)");
        }
        long room = h.blocksInImage * BLOCK_SIZE;
        if (h.virtualSize() > room) {
            throw new UnsupportedFeatureException("unsupported VDI image (disk size " + h.virtualSize()
                    + ", image bitmap has room for " + room + ")");
        }
        if (!isNull(raw, OFF_UUID_LINK)) {
            throw new UnsupportedFeatureException("unsupported VDI image (non-NULL link UUID): a VirtualBox "
                    + "differencing image, which qemu does not read either");
        }
        if (!isNull(raw, OFF_UUID_PARENT)) {
            throw new UnsupportedFeatureException("unsupported VDI image (non-NULL parent UUID): a VirtualBox "
                    + "differencing image, which qemu does not read either");
        }
        if (h.blocksInImage > MAX_BLOCKS) {
            throw new UnsupportedFeatureException("unsupported VDI image (too many blocks " + h.blocksInImage
                    + ", max is " + MAX_BLOCKS + ")");
        }
        // bounds qemu does not check
        int extra = b.getInt(OFF_BLOCK_EXTRA);
        if (extra != 0) {
            // VirtualBox puts that many bytes before each block's data; qemu ignores the field and misreads
            throw new UnsupportedFeatureException("unsupported VDI image (" + Integer.toUnsignedString(extra)
                    + " extra bytes per block; only 0 is read, as VirtualBox writes)");
        }
        if (h.offsetBmap < BYTES) {
            throw new CorruptImageException("VDI header", OFF_BMAP, String.format("block map offset 0x%x lies "
                    + "inside the 512-byte header", h.offsetBmap));
        }
        long bmapEnd = h.offsetBmap + 4 * h.blocksInImage;
        if (bmapEnd > fileLength) {
            throw new CorruptImageException("VDI block map", h.offsetBmap, String.format("the map of %d blocks "
                    + "ends at 0x%x, past the end of the file (%d bytes)", h.blocksInImage, bmapEnd, fileLength));
        }
        if (h.offsetData < bmapEnd) {
            throw new CorruptImageException("VDI header", OFF_DATA, String.format("data offset 0x%x lies inside "
                    + "the block map (0x%x to 0x%x)", h.offsetData, h.offsetBmap, bmapEnd));
        }
        return h;
    }

    private static boolean isNull(byte[] raw, int at) {
        for (int i = 0; i < 16; i++) {
            if (raw[at + i] != 0) {
                return false;
            }
        }
        return true;
    }

    /** The guest size: qemu rounds an odd size (VBoxManage convertfromraw writes them) up to a sector. */
    long virtualSize() {
        return (diskSize + SECTOR - 1) & -SECTOR;
    }

    boolean isStatic() {
        return imageType == TYPE_STATIC;
    }

    /** Host offset of host block {@code index}. */
    long blockOffset(long index) {
        return offsetData + index * BLOCK_SIZE;
    }

    /** The header with the current blocks_allocated, every other byte as read. */
    ByteBuffer encode() {
        byte[] out = raw.clone();
        le(out).putInt(OFF_ALLOCATED, (int) blocksAllocated);
        return ByteBuffer.wrap(out);
    }

    /**
     * A header laid out as qemu-img create writes one: its text, header size
     * 0x180, the map right after the header and the data right after the map
     * (rounded to a sector), random image and snapshot UUIDs (none when
     * {@code random} is null: the caller sets them).
     */
    static ByteBuffer qemuLayout(long diskSize, boolean fixed, long mapOffset, long dataOffset,
                                 java.util.Random random) {
        byte[] raw = new byte[BYTES];
        ByteBuffer b = le(raw);
        byte[] text = QEMU_TEXT.getBytes(java.nio.charset.StandardCharsets.US_ASCII);
        System.arraycopy(text, 0, raw, 0, text.length);
        long blocks = Math.ceilDiv(diskSize, BLOCK_SIZE);
        b.putInt(OFF_SIGNATURE, SIGNATURE).putInt(OFF_VERSION, VERSION_1_1).putInt(OFF_HEADER_SIZE, 0x180)
                .putInt(OFF_TYPE, fixed ? TYPE_STATIC : TYPE_DYNAMIC)
                .putInt(OFF_BMAP, (int) mapOffset).putInt(OFF_DATA, (int) dataOffset)
                .putInt(OFF_SECTOR_SIZE, SECTOR).putLong(OFF_DISK_SIZE, diskSize).putInt(OFF_BLOCK_SIZE, BLOCK_SIZE)
                .putInt(OFF_BLOCKS, (int) blocks).putInt(OFF_ALLOCATED, fixed ? (int) blocks : 0);
        if (random != null) {
            randomUuid(raw, OFF_UUID_IMAGE, random);
            randomUuid(raw, OFF_UUID_LAST_SNAP, random);
        }
        return ByteBuffer.wrap(raw);
    }

    /** A version 4 UUID (RFC 4122), stored as VirtualBox stores UUIDs (first three fields little endian). */
    private static void randomUuid(byte[] raw, int at, java.util.Random random) {
        byte[] u = new byte[16];
        random.nextBytes(u);
        u[7] = (byte) (u[7] & 0x0f | 0x40); // version nibble: byte 6 of the big-endian form, swapped into 7
        u[8] = (byte) (u[8] & 0x3f | 0x80);
        System.arraycopy(u, 0, raw, at, 16);
    }
}
