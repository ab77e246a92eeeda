package io.diskmorph.format.qed;

import io.diskmorph.image.AbstractDiskImage;
import io.diskmorph.image.CheckReport;
import io.diskmorph.image.CorruptImageException;
import io.diskmorph.image.ImageException;
import io.diskmorph.image.ImageFormat;
import io.diskmorph.image.ImageInfo;
import io.diskmorph.image.Images;
import io.diskmorph.image.InvalidRequestException;
import io.diskmorph.image.Mapping;
import io.diskmorph.image.RelocatableImage;
import io.diskmorph.image.OpenContext;
import io.diskmorph.image.RepairMode;
import io.diskmorph.image.cache.MetadataCache;
import io.diskmorph.image.cache.SyncTracker;
import io.diskmorph.storage.Storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.List;

/**
 * An open QED image. Lookups go L1 -> L2 through bounded caches of table
 * pages; allocating writes append clusters at the usable end of the file
 * (qemu's rule: the file length rounded down to a cluster), and table
 * updates stay cached until {@link #flush} or an eviction writes them, in
 * crash-safe order expressed as cache dependencies: data, sync, L2 pages,
 * sync, L1 pages, sync. Like qemu, the need-check header bit is
 * set (and synced) before the first allocating write of an image without a
 * backing file, and cleared once a flush has made the tables consistent.
 */
final class QedImage extends AbstractDiskImage implements RelocatableImage, io.diskmorph.image.MetadataRegions {
    static final long UNALLOCATED = 0;
    static final long ZERO_CLUSTER = 1;

    /** Memory for cached L1 and L2 table pages. */
    private static final long L1_CACHE_BYTES = 2L << 20;
    private static final long L2_CACHE_BYTES = 6L << 20;
    private static final int ZERO_CHUNK = 1 << 20;

    private final QedFormat format;
    private final long c;
    /** Guest data, new L2 tables and table pages all go through it: syncs happen only when needed. */
    private final SyncTracker file;
    private final MetadataCache<TablePage> l1Pages;
    /** Pages of L2 tables: written after the data they point to, before the L1 entries that point to them. */
    private final MetadataCache<TablePage> l2Pages;
    /** Bytes of one table page. */
    private final int pageBytes;
    private QedHeader header;
    /** qemu's s->file_size: where the next cluster is appended. */
    private long fileEnd;
    /** We set need-check and must clear it once the tables are consistent again. */
    private boolean needCheckSetByUs;
    /** Open-time duties of a writer (need-check repair, autoclear reset) are done. */
    private boolean prepared;
    /**
     * Where the last data run answered by {@link #mapping} was cut short by
     * the caller's length: a query there continues a run whose first cluster
     * was validated ({@code continuedL2 < 0}: none).
     */
    private long continuedL2 = -1;
    private long continuedIndex;
    private long continuedHost;

    private QedImage(QedFormat format, Storage storage, OpenContext context, QedHeader header, long fileLength) {
        super(storage, context);
        this.format = format;
        this.header = header;
        this.c = header.clusterSize;
        this.fileEnd = QedHeader.usableFileSize(fileLength, c);
        this.file = new SyncTracker(storage);
        int pageBytes = TablePage.pageBytes(header.tableBytes());
        this.pageBytes = pageBytes;
        this.l1Pages = new MetadataCache<>("QED L1 table page", file, pageBytes,
                (int) Math.max(4, L1_CACHE_BYTES / pageBytes), () -> new TablePage(pageBytes));
        this.l2Pages = new MetadataCache<>("QED L2 table page", file, pageBytes,
                (int) Math.max(4, L2_CACHE_BYTES / pageBytes), () -> new TablePage(pageBytes));
    }

    static QedImage open(QedFormat format, Storage storage, OpenContext context) throws IOException {
        long length = storage.size();
        QedHeader h = QedHeader.read(storage.readBytes(0, (int) Math.min(QedHeader.BYTES, length)), length);
        QedImage img = new QedImage(format, storage, context, h, length);
        if (h.hasBackingFile()) {
            img.backingName = QedHeader.decodeName(storage.readBytes(h.backingNameOffset, (int) h.backingNameSize));
            // bit 0x4: the backing file must not be probed (qemu passes "raw")
            img.backingFmt = (h.features & QedHeader.F_BACKING_FORMAT_NO_PROBE) != 0 ? "raw" : null;
        }
        return img;
    }

    @Override
    public ImageFormat format() {
        return format;
    }

    @Override
    public long virtualSize() {
        return header.imageSize;
    }

    @Override
    public long clusterSize() {
        return c;
    }

    @Override
    public java.util.Map<String, String> creationOptions() {
        return java.util.Map.of("cluster_size", Long.toString(c), "table_size", Long.toString(header.tableSize));
    }

    QedHeader header() {
        return header;
    }

    // ---- lookups --------------------------------------------------------------------------

    private MetadataCache<TablePage> pagesOf(long tableOffset) {
        return tableOffset == header.l1TableOffset ? l1Pages : l2Pages;
    }

    private long pageOffset(long tableOffset, long index) {
        return tableOffset + index * 8 / pageBytes * pageBytes;
    }

    private int inPage(long index) {
        return (int) (index % (pageBytes / 8));
    }

    /** Entry {@code index} of the table at {@code tableOffset}. */
    private long entry(long tableOffset, long index) throws IOException {
        return pagesOf(tableOffset).get(pageOffset(tableOffset, index)).entries[inPage(index)];
    }

    /**
     * Sets an entry. An L2 entry is written after the data it maps; an L1
     * entry after the L2 table it points to (written as zeros, or in pages).
     */
    private void setEntry(long tableOffset, long index, long value) throws IOException {
        MetadataCache<TablePage> pages = pagesOf(tableOffset);
        TablePage p = pages.get(pageOffset(tableOffset, index));
        int i = inPage(index);
        if (p.entries[i] != value) {
            p.entries[i] = value;
            pages.markDirty(p);
            pages.dependOn(pages == l1Pages ? l2Pages : file);
        }
    }

    /** L2 table offset for an L1 index, 0 when none; an invalid offset is corruption. */
    private long l2Table(long l1Index) throws IOException {
        long l2 = entry(header.l1TableOffset, l1Index);
        if (l2 != UNALLOCATED && !header.isTableOffsetValid(l2, fileEnd)) {
            throw new CorruptImageException("QED L1 table", header.l1TableOffset + 8 * l1Index, String.format(
                    "L2 table offset 0x%x is invalid (misaligned, inside the header or past the end of the file)",
                    l2));
        }
        return l2;
    }

    private CorruptImageException badCluster(long l2, long index, long offset) {
        return new CorruptImageException("QED L2 table", l2 + 8 * index, String.format(
                "cluster offset 0x%x is invalid (misaligned, inside the header or past the end of the file)",
                offset));
    }

    /**
     * qemu's qed_find_cluster: the answer stops at the L2 boundary and covers
     * a run of entries of one kind (unallocated, zero, or host-contiguous
     * data). As in qemu, only the first data cluster of a run is validated
     * (later ones may lie past the end of the file and read as zeros), so
     * {@code map} reports the same extents qemu-img map does. qemu-img map
     * asks for the rest of the disk at once; a caller asking in pieces
     * (AbstractDiskImage.read, bounded by its buffer) continues a run without revalidating it.
     */
    /** qemu 7.2's qed_find_cluster: one L2 table at a time. */
    @Override
    public long blockStatusLimit(long guestOffset) {
        long cov = header.l2Coverage();
        return Math.min((guestOffset / cov + 1) * cov, virtualSize());
    }

    @Override
    public Mapping mapping(long guestOffset, long maxLength) throws IOException {
        if (guestOffset < 0 || guestOffset >= virtualSize() || maxLength <= 0) {
            throw new InvalidRequestException(String.format("mapping request at 0x%x+0x%x is outside the virtual "
                    + "disk (size %d)", guestOffset, maxLength, virtualSize()));
        }
        long cov = header.l2Coverage();
        long len = Math.min(Math.min(maxLength, virtualSize() - guestOffset), cov - guestOffset % cov);
        long l2 = l2Table(guestOffset / cov);
        if (l2 == UNALLOCATED) {
            return new Mapping.Unallocated(len);
        }
        long inCluster = guestOffset % c;
        long index = guestOffset % cov / c;
        long wanted = (inCluster + len + c - 1) / c;
        long first = entry(l2, index);
        long n = 1;
        for (long last = first; n < wanted; n++) {
            long e = entry(l2, index + n);
            if (last == UNALLOCATED || last == ZERO_CLUSTER) {
                if (e != last) {
                    break;
                }
            } else {
                if (e != last + c) {
                    break;
                }
                last = e;
            }
        }
        len = Math.min(len, n * c - inCluster);
        boolean continued = l2 == continuedL2 && index == continuedIndex && first == continuedHost;
        continuedL2 = -1;
        if (first == UNALLOCATED) {
            return new Mapping.Unallocated(len);
        }
        if (first == ZERO_CLUSTER) {
            return new Mapping.Zero(len);
        }
        if (!continued && !header.isClusterOffsetValid(first, fileEnd)) {
            throw badCluster(l2, index, first);
        }
        if (n == wanted && (inCluster + len) % c == 0) {
            continuedL2 = l2;
            continuedIndex = index + n;
            continuedHost = first + n * c;
        }
        return new Mapping.Data(len, first + inCluster);
    }

    // ---- writes ---------------------------------------------------------------------------

    @Override
    public void write(ByteBuffer src, long guestOffset) throws IOException {
        checkWritable();
        checkRange(guestOffset, src.remaining());
        prepareForWrite();
        long cov = header.l2Coverage();
        long pos = guestOffset;
        while (src.hasRemaining()) {
            long len = Math.min(src.remaining(), cov - pos % cov);
            long l1Index = pos / cov;
            long l2 = l2Table(l1Index);
            long index = pos % cov / c;
            long inCluster = pos % c;
            long clusters = (inCluster + len + c - 1) / c;
            long first = l2 == UNALLOCATED ? UNALLOCATED : entry(l2, index);
            long n = 1;
            if (first == UNALLOCATED || first == ZERO_CLUSTER) {
                // a run of clusters to allocate (unallocated or zero, in any mix)
                while (n < clusters && l2 != UNALLOCATED && isUnallocatedOrZero(entry(l2, index + n))) {
                    n++;
                }
                if (l2 == UNALLOCATED) {
                    n = clusters;
                }
                int bytes = (int) Math.min(len, n * c - inCluster);
                long last = l2 == UNALLOCATED ? UNALLOCATED : entry(l2, index + n - 1);
                allocatingWrite(src.slice(src.position(), bytes), pos, l1Index, index, n, first, last);
                src.position(src.position() + bytes);
                pos += bytes;
            } else {
                if (!header.isClusterOffsetValid(first, fileEnd)) {
                    throw badCluster(l2, index, first);
                }
                for (long host = first; n < clusters; n++) {
                    long e = entry(l2, index + n);
                    if (e != host + c || !header.isClusterOffsetValid(e, fileEnd)) {
                        break;
                    }
                    host = e;
                }
                int bytes = (int) Math.min(len, n * c - inCluster);
                file.write(src.slice(src.position(), bytes), first + inCluster);
                src.position(src.position() + bytes);
                pos += bytes;
            }
        }
    }

    private static boolean isUnallocatedOrZero(long e) {
        return e == UNALLOCATED || e == ZERO_CLUSTER;
    }

    /**
     * Writes {@code data} at guest {@code pos} into {@code n} new clusters
     * appended to the file; the untouched head and tail of the first and last
     * cluster are filled from what the guest saw there before (the backing
     * file for unallocated clusters, zeros for zero clusters). Then points
     * the L2 entries at them (cached until flush).
     */
    private void allocatingWrite(ByteBuffer data, long pos, long l1Index, long index, long n, long firstEntry,
                                 long lastEntry) throws IOException {
        markNeedCheck();
        long host = allocate(n);
        long clusterStart = pos - pos % c;
        long head = pos - clusterStart;
        long end = pos + data.remaining();
        long tail = clusterStart + n * c - end;
        file.write(data, host + head);
        if (head > 0) {
            file.write(previousContent(clusterStart, (int) head, firstEntry), host);
        }
        if (tail > 0) {
            file.write(previousContent(end, (int) tail, lastEntry), host + n * c - tail);
        }
        long l2 = ensureL2(l1Index);
        for (long i = 0; i < n; i++) {
            setEntry(l2, index + i, host + i * c);
        }
    }

    /** What the guest read at [guestOffset, +length) of a cluster with this entry (zeros past the disk end). */
    private ByteBuffer previousContent(long guestOffset, int length, long entry) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(length);
        long inDisk = Math.max(0, Math.min(length, virtualSize() - guestOffset));
        if (entry == UNALLOCATED && inDisk > 0) {
            readBacking(b.slice(0, (int) inDisk), guestOffset);
        }
        return b;
    }

    /** The L2 table for an L1 index, allocated (zeroed on disk, then linked in the cached L1) when missing. */
    private long ensureL2(long l1Index) throws IOException {
        long l2 = l2Table(l1Index);
        if (l2 == UNALLOCATED) {
            l2 = allocate(header.tableSize);
            writeZeros(l2, header.tableBytes());
            setEntry(header.l1TableOffset, l1Index, l2);
        }
        return l2;
    }

    /** qemu's qed_alloc_clusters: appends at the usable end of the file. */
    private long allocate(long clusters) throws IOException {
        long at = fileEnd;
        try {
            fileEnd = Math.addExact(fileEnd, Math.multiplyExact(clusters, c));
        } catch (ArithmeticException e) {
            throw new ImageException(storage.name() + ": QED image file would grow past 2^63 bytes");
        }
        return at;
    }

    private void writeZeros(long offset, long length) throws IOException {
        ByteBuffer zeros = ByteBuffer.allocate((int) Math.min(ZERO_CHUNK, length));
        for (long done = 0; done < length; ) {
            int n = (int) Math.min(zeros.capacity(), length - done);
            file.write(zeros.clear().limit(n), offset + done);
            done += n;
        }
    }

    /**
     * Zero writes: whole clusters become zero clusters (entry 1) unless they
     * already read as zeros without a backing file; allocated clusters keep
     * their place and get zeros written (or, with {@code mayUnmap}, a hole
     * punched), since QED cannot free a cluster without leaking it. Partial
     * clusters go through an ordinary write of zeros, as in qemu.
     */
    @Override
    public void writeZeroes(long guestOffset, long length, boolean mayUnmap) throws IOException {
        checkWritable();
        checkRange(guestOffset, length);
        prepareForWrite();
        long end = guestOffset + length;
        long pos = guestOffset;
        long cov = header.l2Coverage();
        while (pos < end) {
            long clusterEnd = Math.min(pos - pos % c + c, virtualSize());
            if (pos % c != 0 || end < clusterEnd) {
                long n = Math.min(end, clusterEnd) - pos;
                zeroPartialCluster(pos, n);
                pos += n;
                continue;
            }
            // whole clusters (the disk's last cluster counts as whole when the range reaches the end)
            long wholeEnd = end == virtualSize() ? end : end - end % c;
            long runEnd = Math.min(wholeEnd, pos - pos % cov + cov);
            zeroWholeClusters(pos, runEnd, mayUnmap);
            pos = runEnd;
        }
    }

    private void zeroPartialCluster(long pos, long n) throws IOException {
        long cov = header.l2Coverage();
        long l2 = l2Table(pos / cov);
        long index = pos % cov / c;
        long e = l2 == UNALLOCATED ? UNALLOCATED : entry(l2, index);
        if (e == ZERO_CLUSTER || (e == UNALLOCATED && backingName == null)) {
            return; // already reads as zeros
        }
        if (e == UNALLOCATED) {
            write(ByteBuffer.allocate((int) n), pos);
            return;
        }
        if (!header.isClusterOffsetValid(e, fileEnd)) {
            throw badCluster(l2, index, e);
        }
        writeZeros(e + pos % c, n);
    }

    private void zeroWholeClusters(long pos, long end, boolean mayUnmap) throws IOException {
        long cov = header.l2Coverage();
        long l1Index = pos / cov;
        long l2 = l2Table(l1Index);
        if (l2 == UNALLOCATED && backingName == null) {
            return; // the whole range already reads as zeros
        }
        for (long g = pos; g < end; g += c) {
            long index = g % cov / c;
            long e = l2 == UNALLOCATED ? UNALLOCATED : entry(l2, index);
            if (e == ZERO_CLUSTER || (e == UNALLOCATED && backingName == null)) {
                continue;
            }
            if (e == UNALLOCATED) {
                markNeedCheck();
                l2 = ensureL2(l1Index);
                setEntry(l2, index, ZERO_CLUSTER);
                continue;
            }
            if (!header.isClusterOffsetValid(e, fileEnd)) {
                throw badCluster(l2, index, e);
            }
            if (mayUnmap) {
                file.punchHole(e, c);
            } else {
                writeZeros(e, c);
            }
        }
    }

    // ---- header state, flush --------------------------------------------------------------

    /**
     * What qemu does when it opens an image for writing: an image left with
     * need-check is checked and repaired (invalid entries dropped), and
     * unknown autoclear bits are reset. Done before our first write, so that
     * an explicit {@link #check} still sees the image as it was.
     */
    private void prepareForWrite() throws IOException {
        if (prepared) {
            return;
        }
        prepared = true;
        if (header.needsCheck()) {
            check(RepairMode.ALL);
        }
        if (header.autoclearFeatures != 0) {
            header = header.withAutoclearFeatures(0);
            writeHeaderAndSync();
        }
    }

    /**
     * qemu's qed_should_set_need_check: without a backing file, mark the image
     * before its tables change. (With one, qemu relies on flushing data before
     * the L2 update, which our flush order always does.)
     */
    private void markNeedCheck() throws IOException {
        boolean hasBacking = backingName != null && context.backing() != null;
        if (!hasBacking && !header.needsCheck()) {
            header = header.withFeatures(header.features | QedHeader.F_NEED_CHECK);
            writeHeaderAndSync();
            needCheckSetByUs = true;
        }
    }

    private void writeHeaderAndSync() throws IOException {
        storage.write(header.encode(), 0);
        storage.sync();
    }

    /**
     * Everything durable, in the order the dependencies say (data, sync, L2
     * pages, sync, L1 pages, sync): tables never point at unwritten clusters
     * or tables.
     */
    private void flushMetadata() throws IOException {
        l1Pages.flush();
        l2Pages.flush();
        file.flush();
    }

    @Override
    public void flush() throws IOException {
        if (isReadOnly()) {
            return;
        }
        flushMetadata();
        if (needCheckSetByUs) {
            header = header.withFeatures(header.features & ~QedHeader.F_NEED_CHECK);
            writeHeaderAndSync();
            needCheckSetByUs = false;
        }
    }

    @Override
    protected void closeImage() throws IOException {
        flush();
    }

    // ---- info, check ----------------------------------------------------------------------

    @Override
    public ImageInfo info() throws IOException {
        String full = Images.fullBackingFilename(context.path(), backingName);
        return new ImageInfo(storage.name(), QedFormat.NAME, virtualSize(), storage.allocatedBytes(), c,
                header.needsCheck(), false, backingName, full, backingFmt, null, List.of());
    }

    /**
     * qemu-img check for QED: one pass (fixing invalid table entries when
     * repairing), then, when something was fixed, a second pass that
     * describes the image as it is now. A repair that leaves no corruption
     * clears need-check (qed_check_mark_clean). Leaks are never repaired.
     * Progress: "tables" (the L1 entries walked), and after a repair "repair" (announced) and
     * "tables" again.
     */
    @Override
    public CheckReport check(RepairMode repair, io.diskmorph.image.PhaseProgress progress) throws IOException {
        boolean fix = repair != RepairMode.NONE;
        if (fix) {
            checkWritable();
        }
        if (!isReadOnly()) {
            flushMetadata();
        }
        CheckReport first = QedChecker.run(storage, header, fix, progress);
        if (!fix) {
            return first;
        }
        boolean changed = first.corruptionsFixed > 0;
        progress.update("repair", 0, 0);
        if (changed) {
            storage.sync();
        }
        if (first.corruptions == 0 && first.checkErrors == 0 && header.needsCheck()) {
            header = header.withFeatures(header.features & ~QedHeader.F_NEED_CHECK);
            writeHeaderAndSync();
            needCheckSetByUs = false;
            changed = true;
        }
        CheckReport result = first;
        if (first.corruptionsFixed > 0) {
            l1Pages.clear();
            l2Pages.clear();
            continuedL2 = -1;
            result = QedChecker.run(storage, header, false, progress);
            result.corruptionsFixed = first.corruptionsFixed;
            result.messages.clear();
            result.messages.addAll(first.messages); // what was found and repaired, and what remains
        }
        result.repaired = changed;
        return result;
    }

    // ---- relocation (in place to raw) ----

    @Override
    public long unitSize() {
        return c;
    }

    @Override
    public String notRelocatable() {
        return QedRelocation.whyNot(this);
    }

    @Override
    public long relocatedMetadataBytes(long metadataOffset) throws IOException {
        return QedRelocation.metadataBytes(this);
    }

    @Override
    public Relocation relocate(Storage writable, long metadataOffset) throws IOException {
        return QedRelocation.start(this, writable, metadataOffset);
    }

    // ---- the picture of the file (diskmorph layout) ----

    @Override
    public void metadataRegions(Sink sink) throws IOException {
        sink.region("header", 0, header.headerSize * header.clusterSize);
        sink.region("L1 table", header.l1TableOffset, header.tableBytes());
        long tables = header.tableEntries();
        for (long i = 0; i < tables; i++) {
            long l2 = l2Table(i);
            if (l2 != UNALLOCATED) {
                sink.region("L2 tables", l2, header.tableBytes());
            }
        }
    }
}
