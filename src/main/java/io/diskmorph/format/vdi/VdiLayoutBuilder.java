package io.diskmorph.format.vdi;

import io.diskmorph.image.CommitRecord;
import io.diskmorph.image.CreateSpec;
import io.diskmorph.image.FormatOptions;
import io.diskmorph.image.HostSpace;
import io.diskmorph.image.InvalidRequestException;
import io.diskmorph.image.LayoutBuilder;
import io.diskmorph.image.UnsupportedFeatureException;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Arrays;

/**
 * Builds a dynamic VDI over 1 MiB blocks that stay where they are: the
 * header at 0, the block map right after it at 0x200 (as qemu puts it), the
 * data area at the first 1 MiB boundary after the map (as VirtualBox aligns
 * it: data follows the map), so host block k is the MiB at offset_data +
 * k MiB. The map is streamed out page by page as the guest offsets advance
 * (memory: one 64 KiB page). Guest blocks that must read as zeros get the
 * discarded entry.
 *
 * <p>VDI numbers host blocks densely: blocks_allocated is the count of
 * allocated entries, and the next new block goes at offset_data +
 * blocks_allocated MiB. So every MiB between offset_data and the end must
 * be a referenced block: the in-place engine lays a VDI target out densely
 * ({@link VdiFormat#unreferencedSpaceIsLeak()}), as it does QED.
 * blocks_allocated is the highest block used plus one, which equals the
 * count when the layout is dense.
 *
 * <p>The builder is deterministic (the engine runs it twice): the image
 * UUID is derived from the virtual size and the map, not drawn at random.
 */
final class VdiLayoutBuilder implements LayoutBuilder {
    static final long BLOCK = VdiHeader.BLOCK_SIZE;
    private static final long MAP_OFFSET = VdiHeader.BYTES;
    private static final int PAGE_ENTRIES = BlockMap.PAGE_ENTRIES;

    private final HostSpace space;
    private final long virtualSize;
    private final long blocks;
    private final long dataOffset;
    private final int[] page = new int[PAGE_ENTRIES];
    private final MessageDigest digest;
    private long pagesWritten;
    private long lastGuest = -1;
    private long highestBlock = -1;
    private boolean finished;

    private VdiLayoutBuilder(HostSpace space, long virtualSize) {
        this.space = space;
        this.virtualSize = virtualSize;
        this.blocks = Math.ceilDiv(virtualSize, BLOCK);
        this.dataOffset = Math.max(BLOCK, Math.ceilDiv(MAP_OFFSET + 4 * blocks, BLOCK) * BLOCK);
        Arrays.fill(page, BlockMap.UNALLOCATED);
        try {
            this.digest = MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
        digest.update(ByteBuffer.allocate(8).putLong(0, virtualSize));
    }

    /** Validates the options: a dynamic VDI, no backing file, a size VDI can hold without rounding it. */
    static VdiLayoutBuilder create(CreateSpec spec, HostSpace space) throws IOException {
        FormatOptions o = new FormatOptions(VdiFormat.NAME, spec.options());
        boolean fixed = o.bool("static", false);
        String prealloc = o.string("preallocation", "off");
        o.rejectUnknown();
        if (fixed || !prealloc.equals("off")) {
            throw new UnsupportedFeatureException("a VDI built over existing data is dynamic: static=on and "
                    + "preallocation would allocate every block");
        }
        if (spec.backingFile() != null || spec.backingFormat() != null) {
            throw new UnsupportedFeatureException("VDI has no backing files: an image with a backing file cannot "
                    + "become a VDI in place (copy it: 'diskmorph convert -O vdi SRC DST' reads through the chain)");
        }
        long size = spec.virtualSize();
        if (size < 0 || size % VdiHeader.SECTOR != 0) {
            throw new UnsupportedFeatureException("VDI sizes are whole sectors: a disk of " + size
                    + " bytes would change size");
        }
        if (size > VdiHeader.MAX_DISK_SIZE || MAP_OFFSET + 4 * Math.ceilDiv(size, BLOCK) > 0xffffffffL - BLOCK) {
            throw new UnsupportedFeatureException(String.format("Unsupported VDI image size (size is 0x%x, max "
                    + "supported is 0x%x)", size, VdiHeader.MAX_DISK_SIZE));
        }
        return new VdiLayoutBuilder(space, size);
    }

    @Override
    public long clusterSize() {
        return BLOCK;
    }

    /** The header and the map, up to the data area. */
    @Override
    public long headerZone() {
        return dataOffset;
    }

    @Override
    public boolean canKeepDataAt(long hostOffset) {
        return hostOffset >= dataOffset && (hostOffset - dataOffset) % BLOCK == 0
                && (hostOffset - dataOffset) / BLOCK < VdiHeader.MAX_BLOCKS;
    }

    @Override
    public void addData(long guestOffset, long hostOffset) throws IOException {
        if (!canKeepDataAt(hostOffset)) {
            throw new InvalidRequestException(String.format("VDI cannot keep a block at host offset 0x%x (blocks "
                    + "lie at 0x%x + k MiB)", hostOffset, dataOffset));
        }
        long index = (hostOffset - dataOffset) / BLOCK;
        entry(guestOffset, (int) index);
        highestBlock = Math.max(highestBlock, index);
    }

    /** The discarded entry reads as zeros (VDI has no backing file, so nothing shows through anyway). */
    @Override
    public void addZero(long guestOffset) throws IOException {
        entry(guestOffset, BlockMap.DISCARDED);
    }

    @Override
    public boolean supportsZeroClusters() {
        return true;
    }

    private void entry(long guestOffset, int value) throws IOException {
        if (finished) {
            throw new IllegalStateException("VDI layout already finished");
        }
        if (guestOffset < 0 || guestOffset % BLOCK != 0 || guestOffset >= virtualSize || guestOffset <= lastGuest) {
            throw new InvalidRequestException(String.format("guest block 0x%x is not a new block-aligned offset "
                    + "inside the disk, in increasing order", guestOffset));
        }
        lastGuest = guestOffset;
        long block = guestOffset / BLOCK;
        while (pagesWritten < block / PAGE_ENTRIES) {
            writePage();
        }
        page[(int) (block % PAGE_ENTRIES)] = value;
    }

    private void writePage() throws IOException {
        long first = pagesWritten * PAGE_ENTRIES;
        int n = (int) Math.min(PAGE_ENTRIES, blocks - first);
        // a fresh buffer each time: a recording host space may keep it
        ByteBuffer b = ByteBuffer.allocate(n * 4).order(ByteOrder.LITTLE_ENDIAN);
        b.asIntBuffer().put(page, 0, n);
        digest.update(b.duplicate());
        space.write(MAP_OFFSET + first * 4, b);
        Arrays.fill(page, BlockMap.UNALLOCATED);
        pagesWritten++;
    }

    @Override
    public CommitRecord finish() throws IOException {
        if (finished) {
            throw new IllegalStateException("VDI layout already finished");
        }
        while (pagesWritten * PAGE_ENTRIES < blocks) {
            writePage();
        }
        finished = true;
        ByteBuffer header = VdiHeader.qemuLayout(virtualSize, false, MAP_OFFSET, dataOffset, null);
        header.order(ByteOrder.LITTLE_ENDIAN).putInt(VdiHeader.OFF_ALLOCATED, (int) (highestBlock + 1));
        byte[] uuid = Arrays.copyOf(digest.digest(), 16);
        uuid[7] = (byte) (uuid[7] & 0x0f | 0x40);
        uuid[8] = (byte) (uuid[8] & 0x3f | 0x80);
        header.put(VdiHeader.OFF_UUID_IMAGE, uuid).put(VdiHeader.OFF_UUID_LAST_SNAP, uuid);
        return CommitRecord.headerSector(header.array(), space);
    }

    /** The end of the last block: a block is whole in the file even where the disk ends inside it. */
    @Override
    public long requiredFileLength() {
        if (!finished) {
            throw new IllegalStateException("VDI layout not finished yet");
        }
        return dataOffset + (highestBlock + 1) * BLOCK;
    }
}
