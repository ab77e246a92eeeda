package io.diskmorph.format.vhdx;

import io.diskmorph.image.AbstractDiskImage;
import io.diskmorph.image.CheckReport;
import io.diskmorph.image.CorruptImageException;
import io.diskmorph.image.DiskImage;
import io.diskmorph.image.ImageFormat;
import io.diskmorph.image.ImageInfo;
import io.diskmorph.image.Images;
import io.diskmorph.image.InvalidRequestException;
import io.diskmorph.image.Mapping;
import io.diskmorph.image.OpenContext;
import io.diskmorph.image.RepairMode;
import io.diskmorph.image.UnsupportedFeatureException;
import io.diskmorph.image.cache.MetadataCache;
import io.diskmorph.image.cache.SyncTracker;
import io.diskmorph.storage.Storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.List;
import java.util.Locale;

/**
 * An open VHDX disk: guest offsets to payload blocks through the
 * BAT (read in 64 KiB pages through a bounded cache, so a sparse 64 TiB disk
 * maps in a few MiB), partially present blocks of a differencing image
 * through their chunk's sector bitmap, and the parent through the parent
 * locator's relative path, read like a backing file. An active log is read
 * through ({@link VhdxLog}) by a reader, and replayed when the image is
 * opened for writing.
 *
 * <p>Writes (dynamic and fixed images; a differencing image is refused):
 * a block that is not fully present gets a new block at the end of the file,
 * 1 MiB-aligned and a whole block long (as qemu's vhdx_allocate_block), the
 * guest data is written into it, and its BAT entry is set in the cached BAT
 * page, which reaches the file only after the data is synced (the cache
 * depends on the data). The first write of a session writes a new header
 * with new file write and data write GUIDs first.
 */
final class VhdxImage extends AbstractDiskImage implements io.diskmorph.image.MetadataRegions {
    // payload block states (the low 3 bits of a BAT entry)
    static final int NOT_PRESENT = 0;
    static final int UNDEFINED = 1;
    static final int ZERO = 2;
    static final int UNMAPPED = 3;
    /** The value of "unmapped" in drafts of the spec before 1.0; qemu reads it as unmapped too. */
    static final int UNMAPPED_V095 = 5;
    static final int FULLY_PRESENT = 6;
    static final int PARTIALLY_PRESENT = 7;
    /** Sector bitmap block state: present (its other state, not present, is 0). */
    static final int BITMAP_PRESENT = 6;
    static final long OFFSET_MASK = 0xFFFFFFFFFFF00000L;

    private static final long BAT_CACHE_BYTES = 4L << 20;
    private static final long BITMAP_CACHE_BYTES = 1L << 20;
    /** Blocks one mapping answer spans at most: bounds the time of one call, not its meaning. */
    private static final int MAX_BLOCKS_PER_ANSWER = 1 << 16;

    private enum Kind { DATA, ZERO, UNALLOCATED }

    private final VhdxFormat format;
    /** Re-read after each header this driver writes (the GUIDs and sequence number change). */
    VhdxLayout layout;
    private final MetadataCache<BatPage> bat;
    /** Sector bitmap pages, for a differencing image's partially present blocks; null without a parent. */
    private final MetadataCache<BitmapPage> bitmaps;
    /** The file as its log's replay would leave it (the file itself when the log is empty). */
    private final Storage view;
    /** The log's active sequence, read through; null when the log holds none. */
    final VhdxLog.Sequence log;
    private boolean parentChecked;
    /** Guest data and BAT pages go through it: syncs happen only when something was written. */
    private final SyncTracker file;
    /** Where the file ends: new blocks go at the next MiB from here. */
    private long fileEnd;
    /** The header with this session's file and data write GUIDs is written. */
    private boolean writeGuidsUpdated;

    private VhdxImage(VhdxFormat format, Storage storage, OpenContext context, VhdxLayout layout, Storage view,
                      VhdxLog.Sequence log) {
        super(storage, context);
        this.format = format;
        this.layout = layout;
        this.view = view;
        this.log = log;
        this.file = new SyncTracker(view);
        this.fileEnd = layout.fileSize;
        this.bat = new MetadataCache<>("VHDX BAT page", file, BatPage.BYTES,
                (int) (BAT_CACHE_BYTES / BatPage.BYTES), BatPage::new);
        if (layout.hasParent) {
            this.bitmaps = new MetadataCache<>("VHDX sector bitmap page", file, BitmapPage.BYTES,
                    (int) (BITMAP_CACHE_BYTES / BitmapPage.BYTES), BitmapPage::new);
            this.backingName = parentName(layout);
            this.backingFmt = VhdxFormat.NAME;
        } else {
            this.bitmaps = null;
        }
    }

    static VhdxImage open(VhdxFormat format, Storage storage, OpenContext context) throws IOException {
        String name = storage.name();
        boolean writable = !context.readOnly();
        VhdxLayout layout = VhdxLayout.read(storage);
        if (writable && !context.forCheck() && layout.hasParent) {
            throw new UnsupportedFeatureException(name + ": writing to a differencing VHDX is not supported yet "
                    + "(diskmorph reads it; a copy works: 'diskmorph convert -O vhdx SRC DST')");
        }
        if (writable && !context.forCheck()
                && (layout.batOffset % VhdxLayout.MIB != 0 || layout.batLength % VhdxLayout.MIB != 0)) {
            // BAT pages are written whole (64 KiB): a region that is not whole MiBs could end inside one
            throw new UnsupportedFeatureException(name + ": the BAT region (" + layout.batLength + " bytes at offset "
                    + layout.batOffset + ") is not whole MiBs at a MiB boundary, as [MS-VHDX] requires: not written");
        }
        Storage view = storage;
        VhdxLog.Sequence log = null;
        if (!layout.logGuid.isZero()) {
            // the log may hold writes the BAT, metadata or payload do not show yet. A writer replays them into
            // the file first (as qemu does on a writable open, and [MS-VHDX] 2.3.3 asks); a reader reads through
            // them and leaves the file as it is (qemu refuses a read-only open)
            log = VhdxLog.find(storage, layout);
            if (log != null && writable) {
                VhdxLog.replay(storage, layout, log);
                layout = VhdxLayout.read(storage);
                log = null;
            } else if (log != null) {
                view = new VhdxLog.Overlay(storage, log);
                layout = VhdxLayout.read(view);
            }
        }
        if (layout.hasParent) {
            if (!VhdxLayout.VHDX_PARENT_TYPE.equals(layout.parentLocatorType)) {
                throw new UnsupportedFeatureException(name + ": the parent locator's type " + layout.parentLocatorType
                        + " is not a VHDX parent's: the parent cannot be found");
            }
            if (parentName(layout) == null) {
                throw new CorruptImageException("VHDX parent locator", -1, name + ": a differencing image whose "
                        + "parent locator names no path (relative_path, absolute_win32_path, volume_path)");
            }
        }
        return new VhdxImage(format, storage, context, layout, view, log);
    }

    /**
     * The parent as a backing file name: the locator's relative path (a
     * Windows path, its backslashes turned into slashes), else its absolute
     * Windows path or volume path as written (which will not open here, and
     * says so by name).
     */
    private static String parentName(VhdxLayout l) {
        for (String key : List.of("relative_path", "absolute_win32_path", "volume_path")) {
            String v = l.parentLocator.get(key);
            if (v != null && !v.isEmpty()) {
                String p = key.equals("relative_path") ? v.replace('\\', '/') : v;
                while (p.startsWith("./")) {
                    p = p.substring(2);
                }
                return p;
            }
        }
        return null;
    }

    @Override
    public ImageFormat format() {
        return format;
    }

    @Override
    public long virtualSize() {
        return layout.virtualSize;
    }

    /**
     * The alignment every payload block keeps, 1 MiB (the spec's
     * FileOffsetMB), or the block size when smaller (never): what an
     * in-place target's cluster follows, so that every payload byte stays
     * wherever the blocks lie (Hyper-V places blocks at any MiB; a 2 MiB
     * qcow2 cluster would split a block at an odd MiB). {@code info} gives
     * qemu's cluster size, the block size.
     */
    @Override
    public long clusterSize() {
        return Math.min(layout.blockSize, VhdxLayout.MIB);
    }

    @Override
    public boolean isReadOnly() {
        return context.readOnly();
    }

    /**
     * A differencing image's unchanged sectors live in its parent, another
     * file the conversion would have to merge: refused. Every other VHDX
     * holds all its data in its own file.
     */
    @Override
    public String notInPlaceSource() {
        if (log != null) {
            return "the VHDX log holds " + log.entries() + " entries not yet applied to the file (the image was not "
                    + "closed cleanly): replay it first with 'diskmorph check -r all " + storage.name() + "' (or any "
                    + "write; a copy works too: 'diskmorph convert -O qcow2 SRC DST')";
        }
        if (layout.hasParent) {
            return "a differencing VHDX, whose unchanged data lives in its parent " + backingName + ": converting "
                    + "differencing VHDX images in place is not supported yet (a copy works: 'diskmorph convert "
                    + "-O qcow2 SRC DST')";
        }
        return null;
    }

    // ---- the BAT --------------------------------------------------------------------------

    /** BAT entry {@code index} (below {@link VhdxLayout#batEntries}). */
    long batEntry(long index) throws IOException {
        BatPage p = bat.get(layout.batOffset + (index / BatPage.ENTRIES) * BatPage.BYTES);
        return p.entries[(int) (index % BatPage.ENTRIES)];
    }

    /** Bytes of payload block {@code block} inside the disk: a block size, less for a partial last block. */
    long blockLength(long block) {
        return Math.min(layout.blockSize, layout.virtualSize - block * layout.blockSize);
    }

    private static Kind kind(int state) {
        return switch (state) {
            case FULLY_PRESENT -> Kind.DATA;
            case ZERO, UNDEFINED, UNMAPPED, UNMAPPED_V095 -> Kind.ZERO;
            case NOT_PRESENT -> Kind.UNALLOCATED;
            default -> null;
        };
    }

    /**
     * The file offset of a fully present block, refused when it cannot hold
     * the block's data: in the header section, past the end of the file (the
     * last block may end inside the file's last MiB, as qemu allows), or over
     * the log, the BAT or the metadata.
     */
    private long payloadOffset(long block, long entry) throws IOException {
        long off = entry & OFFSET_MASK;
        String problem = payloadProblem(block, off, blockLength(block));
        if (problem != null) {
            throw new CorruptImageException("VHDX BAT", layout.batOffset + 8 * layout.payloadEntry(block),
                    storage.name() + ": " + problem);
        }
        return off;
    }

    /** What is wrong with a payload block of {@code length} bytes at {@code off}, or null. */
    String payloadProblem(long block, long off, long length) {
        if (off < VhdxLayout.HEADER_SECTION) {
            return "payload block " + block + " at offset " + off + " lies in the header section";
        }
        if (off > fileEnd - length) {
            return "payload block " + block + " (offset " + Long.toUnsignedString(off) + ", " + length
                    + " bytes) ends past the end of the file (" + fileEnd + " bytes): the image has "
                    + "probably been truncated";
        }
        for (VhdxLayout.Region r : layout.regions) {
            if (r.overlaps(off, off + layout.blockSize)) {
                return "payload block " + block + " at offset " + off + " overlaps " + r.what();
            }
        }
        return null;
    }

    // ---- mapping and reads ----------------------------------------------------------------

    @Override
    public Mapping mapping(long guestOffset, long maxLength) throws IOException {
        long size = layout.virtualSize;
        if (guestOffset < 0 || guestOffset >= size || maxLength <= 0) {
            throw new InvalidRequestException(String.format("mapping request at 0x%x+0x%x is outside the virtual "
                    + "disk (size %d)", guestOffset, maxLength, size));
        }
        long bs = layout.blockSize;
        long limit = guestOffset + Math.min(size - guestOffset, maxLength);
        long block = guestOffset / bs;
        long inBlock = guestOffset % bs;
        long entry = batEntry(layout.payloadEntry(block));
        int state = (int) (entry & 7);
        if (state == PARTIALLY_PRESENT) {
            return partiallyPresent(block, inBlock, guestOffset, limit);
        }
        Kind kind = kind(state);
        if (kind == null) {
            throw new CorruptImageException("VHDX BAT", layout.batOffset + 8 * layout.payloadEntry(block),
                    storage.name() + ": payload block " + block + " has the unknown state " + state);
        }
        long blockStart = kind == Kind.DATA ? payloadOffset(block, entry) : -1;
        long end = Math.min(limit, (block + 1) * bs);
        // runs of blocks of one kind (and, for data, contiguous in the file) are one answer
        for (long next = block + 1; end < limit && next - block < MAX_BLOCKS_PER_ANSWER; next++) {
            long e = batEntry(layout.payloadEntry(next));
            int s = (int) (e & 7);
            if (kind(s) != kind || (kind == Kind.DATA && payloadOffset(next, e) != blockStart + (next - block) * bs)) {
                break;
            }
            end = Math.min(limit, (next + 1) * bs);
        }
        long length = end - guestOffset;
        return switch (kind) {
            case DATA -> new Mapping.Data(length, blockStart + inBlock, dataFile());
            case ZERO -> new Mapping.Zero(length);
            case UNALLOCATED -> new Mapping.Unallocated(length);
        };
    }

    /**
     * A block of a differencing image whose sectors are partly here and
     * partly in the parent: its chunk's sector bitmap (a bit a logical
     * sector, set where this file holds the sector) decides, one run of
     * equal bits at a time.
     */
    private Mapping partiallyPresent(long block, long inBlock, long guestOffset, long limit) throws IOException {
        long batAt = layout.batOffset + 8 * layout.payloadEntry(block);
        if (!layout.hasParent) {
            throw new CorruptImageException("VHDX BAT", batAt, storage.name() + ": payload block " + block
                    + " is partially present, which only a differencing image's blocks can be");
        }
        long blockStart = payloadOffset(block, batEntry(layout.payloadEntry(block)));
        long bitmapIndex = layout.bitmapEntry(block);
        long bitmapEntry = batEntry(bitmapIndex);
        long bitmapAt = bitmapEntry & OFFSET_MASK;
        if ((bitmapEntry & 7) != BITMAP_PRESENT || bitmapAt < VhdxLayout.HEADER_SECTION
                || bitmapAt > fileEnd - VhdxLayout.MIB) {
            throw new CorruptImageException("VHDX BAT", layout.batOffset + 8 * bitmapIndex, storage.name()
                    + ": payload block " + block + " is partially present, but its sector bitmap (state "
                    + (bitmapEntry & 7) + ", offset " + Long.toUnsignedString(bitmapAt) + ") is not present in the "
                    + "file");
        }
        int ls = layout.logicalSectorSize;
        long sectorsPerBlock = layout.blockSize / ls;
        long firstBit = (block % layout.chunkRatio) * sectorsPerBlock + inBlock / ls;
        long lastBit = (block % layout.chunkRatio) * sectorsPerBlock + (Math.min(limit, (block + 1) * layout.blockSize)
                - block * layout.blockSize + ls - 1) / ls; // exclusive
        boolean here = bit(bitmapAt, firstBit);
        long b = firstBit + 1;
        while (b < lastBit && bit(bitmapAt, b) == here) {
            b++;
        }
        long end = Math.min(limit, block * layout.blockSize + (b - (block % layout.chunkRatio) * sectorsPerBlock) * ls);
        long length = end - guestOffset;
        return here ? new Mapping.Data(length, blockStart + inBlock, dataFile()) : new Mapping.Unallocated(length);
    }

    /**
     * The file data answers name: the image's own (null) unless the log
     * holds writes, whose overlay they are read through then (an in-place
     * conversion, which rewrites the file itself, is refused before:
     * {@link #notInPlaceSource()}).
     */
    private Storage dataFile() {
        return log == null ? null : view;
    }

    private boolean bit(long bitmapAt, long bit) throws IOException {
        long byteAt = bit >>> 3;
        BitmapPage p = bitmaps.get(bitmapAt + (byteAt / BitmapPage.BYTES) * BitmapPage.BYTES);
        return p.isSet((int) (bit % (8L * BitmapPage.BYTES)));
    }

    /**
     * The parent must be the image this one was made from: its data write
     * GUID is the locator's parent_linkage (or parent_linkage2, written
     * while a parent is being replaced). A parent written since would give
     * the guest a mix of two disks.
     */
    @Override
    protected void readBacking(ByteBuffer part, long guestOffset) throws IOException {
        checkParent();
        super.readBacking(part, guestOffset);
    }

    /** The same check for readers that take the parent's data without this image's read (a copy's mapped ranges). */
    @Override
    public void checkBackingReadable() throws IOException {
        checkParent();
    }

    private void checkParent() throws IOException {
        DiskImage parent = backing();
        if (parent == null || parentChecked) {
            return;
        }
        String linkage = layout.parentLocator.get("parent_linkage");
        String linkage2 = layout.parentLocator.get("parent_linkage2");
        String actual = parent instanceof VhdxImage v ? v.layout.dataWriteGuid.toString() : null;
        if (actual == null || !(sameGuid(linkage, actual) || sameGuid(linkage2, actual))) {
            throw new CorruptImageException("VHDX parent locator", -1, storage.name() + ": parent_linkage "
                    + linkage + " is not the data write GUID of the parent " + parent.storage().name() + " ("
                    + (actual != null ? "{" + actual + "}" : "not a VHDX") + "): the parent changed after this "
                    + "differencing image was made");
        }
        parentChecked = true;
    }

    private static boolean sameGuid(String stored, String actual) {
        if (stored == null) {
            return false;
        }
        String s = stored.trim().toLowerCase(Locale.ROOT);
        if (s.startsWith("{") && s.endsWith("}")) {
            s = s.substring(1, s.length() - 1);
        }
        return s.equals(actual.toLowerCase(Locale.ROOT));
    }

    @Override
    public void write(ByteBuffer src, long guestOffset) throws IOException {
        checkWritable();
        checkRange(guestOffset, src.remaining());
        if (!src.hasRemaining()) {
            return;
        }
        long bs = layout.blockSize;
        validateBlocks(guestOffset, src.remaining());
        beforeFirstWrite();
        long pos = guestOffset;
        while (src.hasRemaining()) {
            long block = pos / bs;
            long inBlock = pos % bs;
            int n = (int) Math.min(src.remaining(), bs - inBlock);
            long host = blockForWrite(block);
            file.write(src.slice(src.position(), n), host + inBlock);
            src.position(src.position() + n);
            pos += n;
        }
    }

    /**
     * Zeros: blocks that are not fully present already read as zeros (a
     * differencing image is never written), so only fully present blocks
     * are written, with real zeros in place.
     */
    @Override
    public void writeZeroes(long guestOffset, long length, boolean mayUnmap) throws IOException {
        checkWritable();
        checkRange(guestOffset, length);
        long bs = layout.blockSize;
        validateBlocks(guestOffset, length);
        ByteBuffer zeros = null;
        for (long pos = guestOffset, end = guestOffset + length; pos < end; ) {
            long block = pos / bs;
            long n = Math.min(end - pos, (block + 1) * bs - pos);
            long entry = batEntry(layout.payloadEntry(block));
            if ((entry & 7) == FULLY_PRESENT) {
                beforeFirstWrite();
                long host = payloadOffset(block, entry) + pos % bs;
                if (zeros == null) {
                    zeros = ByteBuffer.allocate((int) Math.min(VhdxLayout.MIB, length));
                }
                for (long done = 0; done < n; ) {
                    int k = (int) Math.min(zeros.capacity(), n - done);
                    file.write(zeros.clear().limit(k), host + done);
                    done += k;
                }
            } else if (kind((int) (entry & 7)) == null) {
                throw unknownState(block, entry);
            }
            pos += n;
        }
    }

    /**
     * Refuses a write over a block whose BAT entry is damaged (an unknown
     * state, a payload offset outside the file or over metadata) before
     * anything is written: a refused write leaves the file as it was.
     */
    private void validateBlocks(long guestOffset, long length) throws IOException {
        long bs = layout.blockSize;
        for (long block = guestOffset / bs; block * bs < guestOffset + length; block++) {
            long entry = batEntry(layout.payloadEntry(block));
            int state = (int) (entry & 7);
            if (state == FULLY_PRESENT) {
                payloadOffset(block, entry);
            } else if (kind(state) == null) {
                throw unknownState(block, entry);
            }
        }
    }

    /**
     * [MS-VHDX] 2.2.2.1: the file write GUID changes when the file is first
     * written after it was opened, the data write GUID when the guest's data
     * first changes (a child whose parent_linkage names the old one must
     * not read the new data as its parent's). One durable header update
     * before any data.
     */
    private void beforeFirstWrite() throws IOException {
        if (writeGuidsUpdated) {
            return;
        }
        layout.writeNextHeader(storage, Guid.random(), Guid.random(), Guid.ZERO);
        layout = VhdxLayout.read(storage);
        writeGuidsUpdated = true;
    }

    /** The file offset of payload block {@code block}, allocated when it is not fully present. */
    private long blockForWrite(long block) throws IOException {
        long index = layout.payloadEntry(block);
        long entry = batEntry(index);
        int state = (int) (entry & 7);
        if (state == FULLY_PRESENT) {
            return payloadOffset(block, entry);
        }
        if (kind(state) == null) {
            throw unknownState(block, entry);
        }
        // not present, zero, unmapped or undefined: all read as zeros without a parent, as a new block does
        long host = Math.addExact(fileEnd, VhdxLayout.MIB - 1) & -VhdxLayout.MIB;
        long end = Math.addExact(host, layout.blockSize);
        storage.truncate(end); // a whole block of zeros, as qemu grows the file; durable with the data's sync
        fileEnd = end;
        BatPage p = bat.get(layout.batOffset + (index / BatPage.ENTRIES) * BatPage.BYTES);
        p.entries[(int) (index % BatPage.ENTRIES)] = host | FULLY_PRESENT;
        bat.markDirty(p);
        // the entry reaches the file only after the block's data is durable (a dependency holds for one flush:
        // it is declared again for every entry)
        bat.dependOn(file);
        return host;
    }

    private CorruptImageException unknownState(long block, long entry) {
        return new CorruptImageException("VHDX BAT", layout.batOffset + 8 * layout.payloadEntry(block),
                storage.name() + ": payload block " + block + " has the state " + (entry & 7) + ", which this "
                + "driver does not write over");
    }

    /** Data first, then the BAT pages that point at it, then a sync: the crash-safe order. */
    @Override
    public void flush() throws IOException {
        if (isReadOnly()) {
            return;
        }
        bat.flush();
        file.flush();
    }

    @Override
    protected void closeImage() throws IOException {
        flush();
    }

    // ---- info, check ----------------------------------------------------------------------

    /** qemu-img's fields: qemu 7.2's vhdx driver gives the block size as the cluster size, nothing specific. */
    @Override
    public ImageInfo info() throws IOException {
        String full = Images.fullBackingFilename(context.path(), backingName);
        return new ImageInfo(storage.name(), VhdxFormat.NAME, layout.virtualSize, storage.allocatedBytes(),
                layout.blockSize, false, false, backingName, full, backingFmt, null, List.of());
    }

    /**
     * qemu-img check's test (fully present blocks past the end of the file
     * or over the log, BAT or metadata: one corruption each) and what it
     * misses; with -r, the log was replayed when the image was opened.
     */
    @Override
    public CheckReport check(RepairMode repair, io.diskmorph.image.PhaseProgress progress) throws IOException {
        // qemu's only VHDX repair is the log's replay, which a writable open (check -r) has done already
        return VhdxChecker.run(this, progress);
    }

    // ---- the picture of the file (diskmorph layout) ----

    @Override
    public void metadataRegions(Sink sink) throws IOException {
        sink.region("header section", 0, VhdxLayout.HEADER_SECTION);
        for (VhdxLayout.Region r : layout.regions) {
            if (r.start() >= VhdxLayout.HEADER_SECTION) {
                sink.region(r.what().startsWith("the ") ? r.what().substring(4) : r.what(), r.start(),
                        r.end() - r.start());
            }
        }
    }
}
