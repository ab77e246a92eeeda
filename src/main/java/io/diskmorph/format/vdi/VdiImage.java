package io.diskmorph.format.vdi;

import io.diskmorph.image.AbstractDiskImage;
import io.diskmorph.image.CheckReport;
import io.diskmorph.image.CorruptImageException;
import io.diskmorph.image.ImageFormat;
import io.diskmorph.image.ImageInfo;
import io.diskmorph.image.InvalidRequestException;
import io.diskmorph.image.Mapping;
import io.diskmorph.image.OpenContext;
import io.diskmorph.image.RepairMode;
import io.diskmorph.image.UnsupportedFeatureException;
import io.diskmorph.image.cache.SyncTracker;
import io.diskmorph.storage.Storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.List;

/**
 * An open VDI image. Guest block b lives at offset_data + map[b] * 1 MiB;
 * unallocated and discarded blocks read as zeros (VDI has no backing file).
 * A write to a block that has none appends a new block at offset_data +
 * blocks_allocated * 1 MiB, as qemu's vdi.c does (the untouched part of the
 * block written as zeros). What a crash may leave is kept harmless by the
 * order of flushes: the new blocks' data, sync, the header with the new
 * blocks_allocated, sync, the map entries, sync. A crash between the
 * header and the map leaves a counted block no entry uses (check reports
 * the count, and no later allocation reuses the block); the reverse order
 * could leave an entry pointing at a block the next allocation hands out
 * again.
 */
final class VdiImage extends AbstractDiskImage implements io.diskmorph.image.MetadataRegions {
    static final long BLOCK = VdiHeader.BLOCK_SIZE;

    private final VdiFormat format;
    private final VdiHeader header;
    private final SyncTracker file;
    private final BlockMap map;
    /** The file's length as this image knows it (grows with allocations). */
    private long fileLength;
    private boolean headerDirty;
    /** The map was checked for entries at or past blocks_allocated (before the first allocation). */
    private boolean allocationChecked;

    private VdiImage(VdiFormat format, Storage storage, OpenContext context, VdiHeader header, long fileLength) {
        super(storage, context);
        this.format = format;
        this.header = header;
        this.fileLength = fileLength;
        this.file = new SyncTracker(storage);
        this.map = new BlockMap(file, header.offsetBmap, header.blocksInImage, this::writeHeaderAfterData);
    }

    static VdiImage open(VdiFormat format, Storage storage, OpenContext context) throws IOException {
        long length = storage.size();
        VdiHeader h = VdiHeader.read(storage.readBytes(0, (int) Math.min(VdiHeader.BYTES, length)), length);
        return new VdiImage(format, storage, context, h, length);
    }

    @Override
    public ImageFormat format() {
        return format;
    }

    @Override
    public long virtualSize() {
        return header.virtualSize();
    }

    @Override
    public long clusterSize() {
        return BLOCK;
    }

    VdiHeader header() {
        return header;
    }

    @Override
    public java.util.Map<String, String> creationOptions() {
        return java.util.Map.of("static", header.isStatic() ? "on" : "off");
    }

    /** qemu reports the holes of a static image's file as zeros (BDRV_BLOCK_RECURSE), not of a dynamic one. */
    @Override
    public boolean mapReportsHostHolesAsZero() {
        return header.isStatic();
    }

    /** qemu 7.2's vdi_co_block_status answers one block at a time. */
    @Override
    public long blockStatusLimit(long guestOffset) {
        return Math.min(guestOffset - guestOffset % BLOCK + BLOCK, virtualSize());
    }

    // ---- lookups --------------------------------------------------------------------------

    /** Host offset of a map entry's block, checked against the map size and the end of the file. */
    private long hostBlock(long block, int entry, long bytesNeeded) throws CorruptImageException {
        long index = Integer.toUnsignedLong(entry);
        if (index >= header.blocksInImage) {
            throw new CorruptImageException("VDI block map", mapEntryOffset(block), String.format(
                    "block %d points at host block %d, past the %d blocks of the image", block, index,
                    header.blocksInImage));
        }
        long host = header.blockOffset(index);
        if (host + bytesNeeded > fileLength) {
            throw new CorruptImageException("VDI block map", mapEntryOffset(block), String.format(
                    "block %d at host offset 0x%x lies past the end of the file (%d bytes)", block, host,
                    fileLength));
        }
        return host;
    }

    private long mapEntryOffset(long block) {
        return header.offsetBmap + 4 * block;
    }

    /** Guest bytes of block {@code block} (the last block may be partial). */
    private long blockBytes(long block) {
        return Math.min(BLOCK, virtualSize() - block * BLOCK);
    }

    /**
     * A run of blocks of one kind from {@code guestOffset}: unallocated or
     * discarded blocks (zeros), or allocated blocks that follow each other on
     * the host. Answers stay within one page of the map.
     */
    @Override
    public Mapping mapping(long guestOffset, long maxLength) throws IOException {
        if (guestOffset < 0 || guestOffset >= virtualSize() || maxLength <= 0) {
            throw new InvalidRequestException(String.format("mapping request at 0x%x+0x%x is outside the virtual "
                    + "disk (size %d)", guestOffset, maxLength, virtualSize()));
        }
        long block = guestOffset / BLOCK;
        long inBlock = guestOffset % BLOCK;
        long len = Math.min(maxLength, virtualSize() - guestOffset);
        long wanted = Math.min(Math.ceilDiv(inBlock + len, BLOCK), map.entriesInPage(block));
        int first = map.get(block);
        boolean allocated = BlockMap.isAllocated(first);
        long n = 1;
        while (n < wanted) {
            int e = map.get(block + n);
            if (allocated ? e != first + (int) n : BlockMap.isAllocated(e)) {
                break;
            }
            n++;
        }
        len = Math.min(len, n * BLOCK - inBlock);
        if (!allocated) {
            return new Mapping.Zero(len);
        }
        // every block of the run is checked: its guest bytes lie inside the file
        long host = hostBlock(block, first, blockBytes(block));
        for (long i = 1; i < n; i++) {
            hostBlock(block + i, first + (int) i, blockBytes(block + i));
        }
        return new Mapping.Data(len, host + inBlock);
    }

    // ---- writes ---------------------------------------------------------------------------

    @Override
    public void write(ByteBuffer src, long guestOffset) throws IOException {
        checkWritable();
        checkRange(guestOffset, src.remaining());
        long pos = guestOffset;
        ByteBuffer buf = src.duplicate();
        while (buf.hasRemaining()) {
            long block = pos / BLOCK;
            long inBlock = pos % BLOCK;
            int n = (int) Math.min(buf.remaining(), BLOCK - inBlock);
            ByteBuffer piece = buf.slice(buf.position(), n);
            int e = map.get(block);
            if (BlockMap.isAllocated(e)) {
                file.write(piece, hostBlock(block, e, blockBytes(block)) + inBlock);
            } else {
                allocate(block, piece, inBlock);
            }
            buf.position(buf.position() + n);
            pos += n;
        }
        src.position(src.limit());
    }

    /** A new host block for guest block {@code block}: zeros around {@code piece}, appended at blocks_allocated. */
    private void allocate(long block, ByteBuffer piece, long inBlock) throws IOException {
        checkAllocationState();
        long index = header.blocksAllocated;
        if (index >= header.blocksInImage) {
            throw new CorruptImageException("VDI header", VdiHeader.OFF_ALLOCATED, String.format(
                    "blocks_allocated %d leaves no room for a new block (the image has %d)", index,
                    header.blocksInImage));
        }
        long host = header.blockOffset(index);
        ByteBuffer whole;
        if (inBlock == 0 && piece.remaining() == BLOCK) {
            whole = piece;
        } else {
            whole = ByteBuffer.allocate((int) BLOCK);
            whole.put((int) inBlock, piece, piece.position(), piece.remaining());
        }
        file.write(whole, host);
        fileLength = Math.max(fileLength, host + BLOCK);
        header.blocksAllocated = index + 1;
        headerDirty = true;
        map.set(block, (int) index);
    }

    /**
     * Before the first allocation: the next block goes at blocks_allocated,
     * so no entry may already use that block or a later one (a damaged map or
     * count would make two guest blocks share one host block).
     */
    private void checkAllocationState() throws IOException {
        if (allocationChecked) {
            return;
        }
        if (header.blocksAllocated > header.blocksInImage) {
            throw new CorruptImageException("VDI header", VdiHeader.OFF_ALLOCATED, String.format(
                    "blocks_allocated %d exceeds the %d blocks of the image; run 'diskmorph check'",
                    header.blocksAllocated, header.blocksInImage));
        }
        for (long b = 0; b < header.blocksInImage; b++) {
            int e = map.get(b);
            if (BlockMap.isAllocated(e) && Integer.toUnsignedLong(e) >= header.blocksAllocated) {
                throw new CorruptImageException("VDI block map", mapEntryOffset(b), String.format(
                        "block %d uses host block %d, which blocks_allocated (%d) says is free; writing could "
                                + "give it to another block: run 'diskmorph check'", b, Integer.toUnsignedLong(e),
                        header.blocksAllocated));
            }
        }
        allocationChecked = true;
    }

    /**
     * Zero writes: blocks without data already read as zeros (VDI has no
     * backing file) and stay so; allocated blocks get zeros written in
     * place. No block is given back: the map has no way to free a host
     * block without leaving a hole in the dense numbering qemu allocates by.
     */
    @Override
    public void writeZeroes(long guestOffset, long length, boolean mayUnmap) throws IOException {
        checkWritable();
        checkRange(guestOffset, length);
        long pos = guestOffset;
        long end = guestOffset + length;
        ByteBuffer zeros = null;
        while (pos < end) {
            long block = pos / BLOCK;
            long inBlock = pos % BLOCK;
            long n = Math.min(end - pos, BLOCK - inBlock);
            int e = map.get(block);
            if (BlockMap.isAllocated(e)) {
                long host = hostBlock(block, e, blockBytes(block)) + inBlock;
                if (zeros == null) {
                    zeros = ByteBuffer.allocate((int) Math.min(BLOCK, length));
                }
                for (long done = 0; done < n; ) {
                    int k = (int) Math.min(zeros.capacity(), n - done);
                    file.write(zeros.clear().limit(k), host + done);
                    done += k;
                }
            }
            pos += n;
        }
    }

    /** The map's dependency: data durable, then the header that counts the new blocks, durable. */
    private void writeHeaderAfterData() throws IOException {
        file.flush();
        if (headerDirty) {
            file.write(header.encode(), 0);
            file.flush();
            headerDirty = false;
        }
    }

    @Override
    public void flush() throws IOException {
        if (isReadOnly()) {
            return;
        }
        map.flush();
        writeHeaderAfterData();
    }

    @Override
    protected void closeImage() throws IOException {
        flush();
    }

    // ---- info, check ----------------------------------------------------------------------

    /** qemu 7.2 shows no format-specific data for VDI, only the block size as the cluster size. */
    @Override
    public ImageInfo info() throws IOException {
        return new ImageInfo(storage.name(), VdiFormat.NAME, virtualSize(), storage.allocatedBytes(), BLOCK,
                false, false, null, null, null, null, List.of());
    }

    /**
     * qemu-img check for VDI: its checks and messages, and what it misses
     * as corruptions. qemu's VDI check repairs nothing: {@code -r} is
     * refused as qemu-img refuses it ("does not support checks", exit 63).
     */
    @Override
    public CheckReport check(RepairMode repair, io.diskmorph.image.PhaseProgress progress) throws IOException {
        if (repair != RepairMode.NONE) {
            throw new UnsupportedFeatureException("VDI check does not repair");
        }
        if (!isReadOnly()) {
            flush();
        }
        return VdiChecker.run(header, map, fileLength, progress);
    }

    // ---- the picture of the file (diskmorph layout) ----

    @Override
    public void metadataRegions(Sink sink) throws IOException {
        sink.region("header", 0, VdiHeader.BYTES);
        sink.region("block map", header.offsetBmap, 4 * header.blocksInImage);
    }
}
