package io.diskmorph.format.vpc;

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
import java.util.Arrays;
import java.util.List;

/**
 * An open VHD. Fixed: guest offset = host offset, the footer after the
 * data. Dynamic: guest block b lives at BAT[b] x 512 + the bitmap size
 * (the sector bitmap sits in front of every block); qemu ignores the
 * bitmap of a dynamic image (every sector of an allocated block is data,
 * and it sets every bit when it allocates), and so does this driver.
 * Unallocated blocks read as zeros. A differencing image reads the
 * sectors its block bitmaps mark and takes the rest from its parent.
 *
 * <p>A new block goes where qemu puts it, at the end of the last block (or
 * of the BAT): the footer is first written at the block's new end and
 * synced, so a footer ends the file at every moment (the bitmap then
 * overwrites the old one); then the bitmap and the data; the BAT page that
 * names the block depends on them ({@link Bat}), so an entry never points
 * at unwritten data. A crash before the entry leaves an unused block before
 * the footer, which the next allocation reuses (the free offset is derived
 * from the BAT, as qemu derives it). The footer copy at offset 0 never
 * changes.
 */
final class VpcImage extends AbstractDiskImage implements io.diskmorph.image.MetadataRegions {
    private final VpcFormat format;
    private final VpcFooter footer;
    /** Null for a fixed image. */
    private final VpcDynamicHeader header;
    private final Bat bat;
    private final SyncTracker file;
    private final long virtualSize;
    private final boolean fixed;
    /** A differencing image: unallocated blocks and clear bitmap bits read from the parent (the backing image). */
    private final boolean differencing;
    private boolean parentChecked;
    /** The sector bitmap last read (differencing images), and its block. */
    private byte[] bitmap;
    private long bitmapBlock = -1;
    private long fileLength;
    /** Where the next block's bitmap goes (qemu's free_data_block_offset). */
    private long nextFree;

    private VpcImage(VpcFormat format, Storage storage, OpenContext context, VpcFooter footer,
                     VpcDynamicHeader header, long virtualSize, long fileLength) {
        super(storage, context);
        this.format = format;
        this.footer = footer;
        this.header = header;
        this.virtualSize = virtualSize;
        this.fixed = header == null;
        this.differencing = footer.type() == VpcFooter.TYPE_DIFFERENCING;
        this.fileLength = fileLength;
        this.file = new SyncTracker(storage);
        this.bat = header == null ? null : new Bat(file, header.batOffset, header.maxTableEntries, file);
    }

    /** The footer at offset 0 and at the end of the file, as they are (unjudged), and where the end one lies. */
    record Footers(VpcFooter atStart, VpcFooter atEnd, long endOffset) {
    }

    static Footers footers(Storage storage, long length) throws IOException {
        VpcFooter start = VpcFooter.of(storage.readBytes(0, (int) Math.min(VpcFooter.BYTES, length)));
        long endAt = Math.max(0, length - VpcFooter.BYTES);
        VpcFooter end = VpcFooter.of(storage.readBytes(endAt, (int) Math.min(VpcFooter.BYTES, length)));
        return new Footers(start, end, endAt);
    }

    static VpcImage open(VpcFormat format, Storage storage, OpenContext context) throws IOException {
        long length = storage.size();
        String name = storage.name();
        if (length < VpcFooter.BYTES) {
            throw new CorruptImageException("VHD footer", 0, "File too small for a VHD header (" + length
                    + " bytes)");
        }
        Footers f = footers(storage, length);
        VpcFooter footer;
        boolean atStart = f.atStart().hasCookie();
        if (atStart) {
            footer = f.atStart(); // qemu reads a dynamic image's copy at 0, never the footer at the end
        } else if (f.atEnd().hasCookie()) {
            footer = f.atEnd();
        } else {
            throw new CorruptImageException("VHD footer", f.endOffset(), "invalid VPC image (no 'conectix' footer "
                    + "at the start or the end of the file)");
        }
        long footerAt = atStart ? 0 : f.endOffset();
        if (!footer.checksumValid() && !context.forCheck()) {
            throw new CorruptImageException("VHD footer", footerAt + VpcFooter.OFF_CHECKSUM, "Incorrect header "
                    + "checksum (run 'diskmorph check' for details)");
        }
        int type = footer.type();
        boolean sparse = type == VpcFooter.TYPE_DYNAMIC || type == VpcFooter.TYPE_DIFFERENCING;
        if (atStart && !sparse) {
            throw new CorruptImageException("VHD footer", VpcFooter.OFF_TYPE, "the footer at offset 0 gives disk "
                    + "type " + type + "; only a dynamic (3) or differencing (4) VHD has one there");
        }
        if (!atStart && type != VpcFooter.TYPE_FIXED) {
            if (!sparse || !context.forCheck()) {
                throw new CorruptImageException("VHD footer", 0, sparse
                        ? "the footer copy at offset 0 of this dynamic VHD is damaged (run 'diskmorph check -r all' "
                        + "to restore it from the footer at the end)"
                        : "disk type " + type + " is not fixed (2), dynamic (3) or differencing (4)");
            }
        }
        long size = footer.virtualSize(name);
        if (type == VpcFooter.TYPE_FIXED) {
            return new VpcImage(format, storage, context, footer, null, size, length);
        }
        long dataOffset = footer.dataOffset();
        if (dataOffset < VpcFooter.BYTES || dataOffset % 512 != 0 || dataOffset > length - VpcDynamicHeader.BYTES) {
            throw new CorruptImageException("VHD footer", footerAt + VpcFooter.OFF_DATA_OFFSET, String.format(
                    "the dynamic header offset 0x%x is not a sector inside the file (%d bytes)", dataOffset, length));
        }
        VpcDynamicHeader h = VpcDynamicHeader.read(storage.readBytes(dataOffset, VpcDynamicHeader.BYTES),
                dataOffset, size, length);
        VpcImage image = new VpcImage(format, storage, context, footer, h, size, length);
        if (image.differencing) {
            image.backingName = parentName(storage, h, length);
            image.backingFmt = VpcFormat.NAME;
        }
        image.nextFree = image.scanFreeOffset();
        if (image.nextFree > length) { // check too: qemu-img check cannot open it either (exit 1)
            throw new CorruptImageException("VHD BAT", h.batOffset, "free_data_block_offset points after the end "
                    + "of file. The image has been truncated.");
        }
        return image;
    }

    /**
     * A differencing image's parent as a backing file name: the relative
     * Windows path of a W2ru locator (backslashes turned into slashes), else
     * the header's parent name (a file name, resolved beside the image),
     * else a W2ku locator's absolute path as written. qemu 7.2 follows none
     * of them (it reads such an image as if it had no parent).
     */
    private static String parentName(Storage storage, VpcDynamicHeader h, long length) throws IOException {
        String absolute = null;
        for (int i = 0; i < 8; i++) {
            VpcDynamicHeader.Locator l = h.locator(i);
            if (l.platformCode() != VpcDynamicHeader.W2RU && l.platformCode() != VpcDynamicHeader.W2KU) {
                continue;
            }
            if (l.dataLength() == 0 || l.dataLength() > 65536 || l.dataOffset() < 0
                    || l.dataOffset() > length - l.dataLength()) {
                throw new CorruptImageException("VHD parent locator", h.offset + VpcDynamicHeader.OFF_LOCATORS
                        + i * VpcDynamicHeader.LOCATOR_BYTES, String.format("the path (%d bytes at 0x%x) is not "
                        + "inside the file (%d bytes)", l.dataLength(), l.dataOffset(), length));
            }
            ByteBuffer b = storage.readBytes(l.dataOffset(), (int) l.dataLength());
            byte[] raw = new byte[b.remaining()];
            b.get(raw);
            String path = new String(raw, java.nio.charset.StandardCharsets.UTF_16LE);
            int nul = path.indexOf('\0');
            path = nul >= 0 ? path.substring(0, nul) : path;
            if (path.isEmpty()) {
                continue;
            }
            if (l.platformCode() == VpcDynamicHeader.W2RU) {
                path = path.replace('\\', '/');
                while (path.startsWith("./")) {
                    path = path.substring(2);
                }
                return path;
            }
            absolute = absolute == null ? path : absolute;
        }
        String name = h.parentName();
        if (!name.isEmpty()) {
            return name;
        }
        if (absolute != null) {
            return absolute;
        }
        throw new CorruptImageException("VHD dynamic header", h.offset + VpcDynamicHeader.OFF_PARENT_NAME, "a "
                + "differencing VHD whose header names no parent (no parent name, no W2ru or W2ku locator)");
    }

    /** qemu's free_data_block_offset: past the BAT and past the end of every block the BAT names. */
    private long scanFreeOffset() throws IOException {
        long end = header.batEnd();
        for (long b = 0; b < header.maxTableEntries; b++) {
            int e = bat.get(b);
            if (e != Bat.UNALLOCATED) {
                end = Math.max(end, blockStart(e) + header.bitmapSize + header.blockSize);
            }
        }
        return end;
    }

    private static long blockStart(int entry) {
        return Integer.toUnsignedLong(entry) * 512;
    }

    @Override
    public ImageFormat format() {
        return format;
    }

    @Override
    public long virtualSize() {
        return virtualSize;
    }

    /** The block size of a dynamic image; a fixed one has none (qemu shows no cluster size). */
    @Override
    public long clusterSize() {
        return fixed ? 0 : header.blockSize;
    }

    boolean isFixed() {
        return fixed;
    }

    VpcFooter footer() {
        return footer;
    }

    VpcDynamicHeader header() {
        return header;
    }

    Bat bat() {
        return bat;
    }

    long nextFree() {
        return nextFree;
    }

    long fileLength() {
        return fileLength;
    }

    @Override
    public java.util.Map<String, String> creationOptions() {
        return java.util.Map.of("subformat", fixed ? "fixed" : "dynamic",
                "force_size", footer.sizeFromGeometry() ? "off" : "on");
    }

    /** A fixed image reads its file like raw, whose holes qemu reports as zeros (BDRV_BLOCK_RAW). */
    @Override
    public boolean mapReportsHostHolesAsZero() {
        return fixed;
    }

    /** qemu answers an allocated block one block at a time, unallocated runs as far as they go. */
    @Override
    public long blockStatusLimit(long guestOffset) {
        if (fixed) {
            return virtualSize;
        }
        try {
            if (bat.get(guestOffset / header.blockSize) == Bat.UNALLOCATED) {
                return virtualSize;
            }
        } catch (IOException e) {
            // the mapping call that follows reports it
        }
        return Math.min(guestOffset - guestOffset % header.blockSize + header.blockSize, virtualSize);
    }

    // ---- lookups --------------------------------------------------------------------------

    /** Host offset of block {@code block}'s data, checked against the end of the file. */
    private long blockData(long block, int entry) throws CorruptImageException {
        long data = blockStart(entry) + header.bitmapSize;
        long guestBytes = Math.min(header.blockSize, virtualSize - block * header.blockSize);
        if (data + guestBytes > fileLength) {
            throw new CorruptImageException("VHD BAT", bat.entryOffset(block), String.format("block %d at host "
                    + "offset 0x%x lies past the end of the file (%d bytes)", block, data, fileLength));
        }
        return data;
    }

    @Override
    public Mapping mapping(long guestOffset, long maxLength) throws IOException {
        if (guestOffset < 0 || guestOffset >= virtualSize || maxLength <= 0) {
            throw new InvalidRequestException(String.format("mapping request at 0x%x+0x%x is outside the virtual "
                    + "disk (size %d)", guestOffset, maxLength, virtualSize));
        }
        long len = Math.min(maxLength, virtualSize - guestOffset);
        if (fixed) {
            return new Mapping.Data(len, guestOffset);
        }
        long bs = header.blockSize;
        long block = guestOffset / bs;
        long inBlock = guestOffset % bs;
        int e = bat.get(block);
        if (e != Bat.UNALLOCATED && differencing) {
            return sectorRun(block, e, inBlock, Math.min(len, bs - inBlock));
        }
        if (e != Bat.UNALLOCATED) {
            return new Mapping.Data(Math.min(len, bs - inBlock), blockData(block, e) + inBlock);
        }
        long end = Math.min(guestOffset + len, (block + 1) * bs);
        // a run of unallocated blocks, looked up a page of the BAT at a time at most
        for (long b = block + 1; end < guestOffset + len && b - block < Bat.PAGE_ENTRIES; b++) {
            if (bat.get(b) != Bat.UNALLOCATED) {
                break;
            }
            end = Math.min(guestOffset + len, (b + 1) * bs);
        }
        return differencing ? new Mapping.Unallocated(end - guestOffset) : new Mapping.Zero(end - guestOffset);
    }

    /**
     * A differencing image's allocated block: its sector bitmap (the first
     * sector is the most significant bit of the first byte) says which
     * sectors are here; the others are the parent's.
     */
    private Mapping sectorRun(long block, int entry, long inBlock, long len) throws IOException {
        long data = blockData(block, entry);
        if (bitmapBlock != block) {
            ByteBuffer b = storage.readBytes(blockStart(entry), (int) header.bitmapSize);
            bitmap = new byte[(int) header.bitmapSize];
            b.get(bitmap, 0, Math.min(bitmap.length, b.remaining()));
            bitmapBlock = block;
        }
        long sector = inBlock / 512;
        boolean present = present(sector);
        long endSector = Math.ceilDiv(inBlock + len, 512);
        long s = sector + 1;
        while (s < endSector && present(s) == present) {
            s++;
        }
        long n = Math.min(len, s * 512 - inBlock);
        return present ? new Mapping.Data(n, data + inBlock) : new Mapping.Unallocated(n);
    }

    private boolean present(long sector) {
        return (bitmap[(int) (sector >>> 3)] & (0x80 >>> (int) (sector & 7))) != 0;
    }

    /**
     * The parent must be the disk this one was made from: its footer's UUID
     * is the header's parent UUID (Virtual PC and Hyper-V refuse another
     * parent; a parent replaced since would give the guest a mix of two disks).
     */
    @Override
    protected void readBacking(ByteBuffer part, long guestOffset) throws IOException {
        checkBackingReadable();
        super.readBacking(part, guestOffset);
    }

    @Override
    public void checkBackingReadable() throws IOException {
        backing();
    }

    /** The parent, checked when it is first opened: every reader of the chain gets it through here. */
    @Override
    public io.diskmorph.image.DiskImage backing() throws IOException {
        io.diskmorph.image.DiskImage parent = super.backing();
        if (differencing && !parentChecked && parent != null) {
            if (!(parent instanceof VpcImage p) || !Arrays.equals(p.footer.uuid(), header.parentUuid())) {
                throw new CorruptImageException("VHD dynamic header", header.offset
                        + VpcDynamicHeader.OFF_PARENT_UUID, storage.name() + ": the parent UUID is not that of the "
                        + "parent " + parent.storage().name() + ": the parent changed after this differencing image "
                        + "was made");
            }
            parentChecked = true;
        }
        return parent;
    }

    /** A differencing image's unchanged sectors live in its parent: another file, which in place cannot merge. */
    @Override
    public String notInPlaceSource() {
        return differencing ? "a differencing VHD, whose unchanged sectors live in its parent " + backingName
                + ": converting it in place is not supported (a copy works: 'diskmorph convert -O qcow2 SRC DST')"
                : null;
    }

    // ---- writes ---------------------------------------------------------------------------

    @Override
    public void write(ByteBuffer src, long guestOffset) throws IOException {
        checkWritable();
        refuseDifferencing();
        checkRange(guestOffset, src.remaining());
        if (fixed) {
            checkFixedWritable();
            file.write(src.duplicate(), guestOffset);
            src.position(src.limit());
            return;
        }
        long bs = header.blockSize;
        long pos = guestOffset;
        ByteBuffer buf = src.duplicate();
        while (buf.hasRemaining()) {
            long block = pos / bs;
            long inBlock = pos % bs;
            int n = (int) Math.min(buf.remaining(), bs - inBlock);
            ByteBuffer piece = buf.slice(buf.position(), n);
            int e = bat.get(block);
            if (e != Bat.UNALLOCATED) {
                file.write(piece, blockData(block, e) + inBlock);
            } else {
                allocate(block, piece, inBlock);
            }
            buf.position(buf.position() + n);
            pos += n;
        }
        src.position(src.limit());
    }

    private void refuseDifferencing() throws UnsupportedFeatureException {
        if (differencing) {
            throw new UnsupportedFeatureException(storage.name() + ": writes to a differencing VHD are not "
                    + "supported");
        }
    }

    /** A fixed image whose disk reaches into its footer (a damaged size) is not written. */
    private void checkFixedWritable() throws IOException {
        if (virtualSize > fileLength - VpcFooter.BYTES) {
            throw new CorruptImageException("VHD footer", fileLength - VpcFooter.BYTES, "the disk (" + virtualSize
                    + " bytes) reaches into the footer of this fixed VHD (" + fileLength + " bytes); refusing to write");
        }
    }

    private void allocate(long block, ByteBuffer piece, long inBlock) throws IOException {
        if (nextFree > fileLength) {
            throw new CorruptImageException("VHD BAT", header.batOffset, "a block lies past the end of the file; "
                    + "refusing to allocate");
        }
        long bs = header.blockSize;
        long bitmapAt = nextFree;
        long dataAt = bitmapAt + header.bitmapSize;
        long newEnd = dataAt + bs;
        if (bitmapAt / 512 >= 0xffffffffL) {
            throw new UnsupportedFeatureException(String.format("a new VHD block at host offset 0x%x is past what "
                    + "a BAT entry can address", bitmapAt));
        }
        long oldLength = fileLength;
        // the new footer first: the bitmap below overwrites the old one, and a footer must end the file throughout
        file.write(footer.buffer(), newEnd);
        file.flush();
        fileLength = Math.max(fileLength, newEnd + VpcFooter.BYTES);
        ByteBuffer bitmap = ByteBuffer.allocate((int) header.bitmapSize);
        Arrays.fill(bitmap.array(), (byte) 0xff); // every sector present, as qemu writes it
        file.write(bitmap, bitmapAt);
        if (dataAt < oldLength && !(inBlock == 0 && piece.remaining() == bs)) {
            // the block's place held bytes before (not a hole past the old end): write it whole
            ByteBuffer whole = ByteBuffer.allocate((int) bs);
            whole.put((int) inBlock, piece, piece.position(), piece.remaining());
            file.write(whole, dataAt);
        } else {
            file.write(piece.duplicate(), dataAt + inBlock);
        }
        nextFree = newEnd;
        bat.set(block, (int) (bitmapAt / 512));
    }

    /**
     * Zero writes: unallocated blocks read zeros already and stay so
     * (VHD has no zero marker); allocated ones get zeros written.
     */
    @Override
    public void writeZeroes(long guestOffset, long length, boolean mayUnmap) throws IOException {
        checkWritable();
        refuseDifferencing();
        checkRange(guestOffset, length);
        if (fixed) {
            checkFixedWritable();
        }
        ByteBuffer zeros = null;
        for (long pos = guestOffset, end = guestOffset + length; pos < end; ) {
            Mapping m = mapping(pos, end - pos);
            if (m instanceof Mapping.Data d) {
                if (zeros == null) {
                    zeros = ByteBuffer.allocate((int) Math.min(1 << 20, length));
                }
                for (long done = 0; done < d.length(); ) {
                    int k = (int) Math.min(zeros.capacity(), d.length() - done);
                    file.write(zeros.clear().limit(k), d.hostOffset() + done);
                    done += k;
                }
            }
            pos += m.length();
        }
    }

    @Override
    public void flush() throws IOException {
        if (isReadOnly()) {
            return;
        }
        if (bat != null) {
            bat.flush();
        }
        file.flush();
    }

    @Override
    protected void closeImage() throws IOException {
        flush();
    }

    // ---- info, check ----------------------------------------------------------------------

    /** qemu 7.2 shows no format-specific data for VHD; the block size as the cluster size of a dynamic image. */
    @Override
    public ImageInfo info() throws IOException {
        return new ImageInfo(storage.name(), VpcFormat.NAME, virtualSize, storage.allocatedBytes(), clusterSize(),
                false, false, backingName, io.diskmorph.image.Images.fullBackingFilename(context.path(), backingName),
                backingFmt, null, List.of());
    }

    /** qemu-img 7.2 has no VHD check; diskmorph's is {@link VpcChecker}. */
    @Override
    public CheckReport check(RepairMode repair, io.diskmorph.image.PhaseProgress progress) throws IOException {
        if (!isReadOnly()) {
            flush();
        }
        return VpcChecker.run(this, repair, progress);
    }

    // ---- the picture of the file (diskmorph layout) ----

    /** Footer (and a dynamic image's copy at 0), dynamic header, BAT, and each block's sector bitmap. */
    @Override
    public void metadataRegions(Sink sink) throws IOException {
        sink.region("footer", fileLength - VpcFooter.BYTES, VpcFooter.BYTES);
        if (fixed) {
            return;
        }
        sink.region("footer", 0, VpcFooter.BYTES);
        sink.region("dynamic header", header.offset, VpcDynamicHeader.BYTES);
        sink.region("BAT", header.batOffset, 4 * header.maxTableEntries);
        for (long block = 0; block < bat.entries(); block++) {
            int e = bat.get(block);
            if (e != Bat.UNALLOCATED) {
                sink.region("sector bitmaps", blockStart(e), header.bitmapSize);
            }
        }
    }
}
