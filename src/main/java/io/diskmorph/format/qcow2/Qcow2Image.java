package io.diskmorph.format.qcow2;

import io.diskmorph.image.AbstractDiskImage;
import io.diskmorph.image.CompressedClusterWriter;
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
import io.diskmorph.image.UnsupportedFeatureException;
import io.diskmorph.image.cache.MetadataCache;
import io.diskmorph.image.cache.SyncTracker;
import io.diskmorph.storage.FileStorage;
import io.diskmorph.storage.LockMode;
import io.diskmorph.storage.Storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static io.diskmorph.format.qcow2.L2Entry.COMPRESSED;
import static io.diskmorph.format.qcow2.L2Entry.NORMAL;
import static io.diskmorph.format.qcow2.L2Entry.UNALLOCATED;
import static io.diskmorph.format.qcow2.L2Entry.ZERO_ALLOC;
import static io.diskmorph.format.qcow2.L2Entry.ZERO_PLAIN;

/**
 * An open qcow2 image: mapping through L1 -> L2 (a bounded cache of L2
 * tables), compressed and extended-L2 clusters, info. Writing lives in
 * {@link Qcow2Writer}.
 */
final class Qcow2Image extends AbstractDiskImage implements CompressedClusterWriter, RelocatableImage,
        io.diskmorph.image.MetadataRegions {
    /** Bytes of L2 tables and of refcount blocks kept cached (qemu's l2-cache-size, refcount-cache-size). */
    static final long L2_CACHE_BYTES = 8L << 20;
    static final long REFCOUNT_CACHE_BYTES = 4L << 20;
    /** Largest single read when loading several adjacent L2 tables. */
    private static final long READAHEAD_BYTES = 1L << 20;

    private final Qcow2Format format;
    Qcow2Header header;
    final Qcow2Geometry geo;
    /** Every write to the image file (data, tables, header) goes through it. */
    final SyncTracker file;
    L1Table l1;
    final MetadataCache<L2Table> l2;
    private Refcounts refcounts;
    private final long refcountCacheBytes;
    private final Storage dataFile;
    private List<SnapshotTable.Snapshot> snapshots;
    long snapshotTableBytes;
    private Boolean metadataPreallocated;
    private Qcow2Writer writer;

    // out-parameters of classify() (one thread at a time, no allocation per entry)
    private int kind;
    private long host;
    private long runEnd;
    private long compressedEntry;

    private long decompressedHost = -1;
    private byte[] decompressed;
    /** The compressed bytes of the cluster being decompressed, kept for the next (one array per cluster was
     *  400 MB of garbage in a copy of a compressed 4 GiB image, and the heap's resident set grew with it). */
    private byte[] compressed;

    private Qcow2Image(Qcow2Format format, Storage storage, OpenContext context, Qcow2Header header,
                       Storage dataFile, SnapshotTable.Table snapshots, long l2CacheBytes, long refcountCacheBytes) {
        super(storage, context);
        this.format = format;
        this.header = header;
        this.geo = Qcow2Geometry.of(header);
        this.file = new SyncTracker(storage);
        this.l1 = new L1Table(file, header.l1TableOffset, header.l1Size);
        this.l2 = new MetadataCache<>("qcow2 L2 table", file, (int) geo.clusterSize,
                (int) Math.max(4, l2CacheBytes / geo.clusterSize), () -> new L2Table(geo.clusterSize));
        this.refcountCacheBytes = refcountCacheBytes;
        this.dataFile = dataFile;
        this.snapshots = snapshots.snapshots();
        this.snapshotTableBytes = snapshots.byteSize();
        this.backingName = header.backingFile;
        this.backingFmt = header.backingFormat();
    }

    static Qcow2Image open(Qcow2Format format, Storage storage, OpenContext context) throws IOException {
        return open(format, storage, context, L2_CACHE_BYTES, REFCOUNT_CACHE_BYTES);
    }

    /** Opens with caches of the given sizes (at least four tables each). */
    static Qcow2Image open(Qcow2Format format, Storage storage, OpenContext context, long l2CacheBytes,
                           long refcountCacheBytes) throws IOException {
        // opened for check, the image opens like qemu's BDRV_O_CHECK: what qemu validates at open, no more
        boolean forCheck = context.forCheck();
        Qcow2Header h = Qcow2Header.read(storage, forCheck);
        boolean readOnly = context.readOnly() || storage.isReadOnly();
        if (readOnly && !forCheck) {
            // reading guest data asks the file's holes and allocated size (preallocated metadata); a check
            // never does, and would only pay for the set-up
            storage.expectSparseQueries();
        }
        long unknown = h.incompatible & ~Qcow2Header.INCOMPAT_KNOWN;
        if (unknown != 0) {
            throw new UnsupportedFeatureException(storage.name() + ": unsupported qcow2 feature(s): "
                    + h.featureNames(0, unknown));
        }
        if (!readOnly && !forCheck && h.has(Qcow2Header.INCOMPAT_CORRUPT)) {
            throw new ImageException(storage.name() + ": qcow2 image is marked corrupt and can only be opened "
                    + "read-only; repair it with 'diskmorph check -r all'");
        }
        if (!readOnly && !forCheck && h.has(Qcow2Header.INCOMPAT_DIRTY)) {
            // qemu repairs refcounts on a read-write open of a dirty image; we refuse instead
            throw new ImageException(storage.name() + ": qcow2 image is dirty (refcounts may be stale after a "
                    + "crash with lazy_refcounts); repair it with 'diskmorph check -r all' before writing");
        }
        if (!h.has(Qcow2Header.INCOMPAT_DATA_FILE) && (h.autoclear & Qcow2Header.AUTOCLEAR_DATA_FILE_RAW) != 0) {
            throw new CorruptImageException("qcow2 header", 88, "data-file-raw is set without an external data "
                    + "file");
        }
        Qcow2Geometry geo = Qcow2Geometry.of(h);
        long needed = geo.l1EntriesFor(h.size);
        if (needed > Integer.MAX_VALUE) {
            throw new CorruptImageException("qcow2 header", 24, "virtual size " + h.size + " is too large");
        }
        long l1Size = Integer.toUnsignedLong(h.l1Size);
        if (l1Size < needed) {
            throw new CorruptImageException("qcow2 header", 36, "L1 table has " + l1Size + " entries, the virtual "
                    + "size needs " + needed);
        }
        long fileSize = storage.size();
        if (!forCheck && l1Size > 0 && h.l1TableOffset >= fileSize) {
            throw new CorruptImageException("qcow2 L1 table", h.l1TableOffset, "lies past the end of the file ("
                    + fileSize + " bytes)");
        }
        if (!forCheck && h.refcountTableOffset >= fileSize) {
            throw new CorruptImageException("qcow2 refcount table", h.refcountTableOffset, "lies past the end of "
                    + "the file (" + fileSize + " bytes)");
        }
        if (!forCheck && (h.l1TableOffset == 0 && l1Size > 0 || h.refcountTableOffset == 0)) {
            throw new CorruptImageException("qcow2 header", 40, "L1 or refcount table overlaps the header");
        }
        SnapshotTable.Table snaps = forCheck ? SnapshotTable.readForCheck(storage, h)
                : SnapshotTable.read(storage, h);
        Storage dataFile = h.has(Qcow2Header.INCOMPAT_DATA_FILE) ? openDataFile(storage, context, h, readOnly)
                : null;
        return new Qcow2Image(format, storage, context, h, dataFile, snaps, l2CacheBytes, refcountCacheBytes);
    }

    /** An external data file is followed only when simple: read-only, a plain relative or absolute file name. */
    private static Storage openDataFile(Storage storage, OpenContext context, Qcow2Header h, boolean readOnly)
            throws IOException {
        String name = h.dataFile();
        if (!readOnly) {
            throw new UnsupportedFeatureException(storage.name() + ": writing qcow2 images with an external data "
                    + "file is not supported");
        }
        if (name == null || name.isEmpty()) {
            throw new UnsupportedFeatureException(storage.name() + ": qcow2 image needs an external data file "
                    + "that is not named in the image");
        }
        if (name.contains(":")) {
            throw new UnsupportedFeatureException(storage.name() + ": external data file '" + name
                    + "' uses a protocol; diskmorph only follows plain file names");
        }
        if (context.path() == null) {
            // an image that is not a file (in memory, a conversion view) has no place on the host to
            // look for it; opening the name anyway would read whatever file it names
            throw new UnsupportedFeatureException(storage.name() + ": external data file '" + name
                    + "' cannot be followed from an image that is not a file");
        }
        // qemu opens the stored name as is: a relative name is relative to the current directory,
        // not to the image (unlike backing files)
        return FileStorage.open(Path.of(name), true, LockMode.SHARED);
    }

    @Override
    public ImageFormat format() {
        return format;
    }

    @Override
    public Storage dataStorage() {
        return dataFile != null ? dataFile : storage;
    }

    @Override
    public long virtualSize() {
        // qemu's block layer keeps whole sectors (total_sectors = size / 512): a header size of
        // 15535872 is a 15535616-byte disk in qemu-img info, map and convert
        return header.size & ~511L;
    }

    @Override
    public long clusterSize() {
        return geo.clusterSize;
    }

    List<SnapshotTable.Snapshot> snapshots() {
        return snapshots;
    }

    /** Refcount access, loaded on first use; a moved refcount table is switched to in the header. */
    Refcounts refcounts() throws IOException {
        if (refcounts == null) {
            refcounts = Refcounts.load(file, geo, header.refcountTableOffset, header.refcountTableClusters,
                    refcountCacheBytes, (offset, clusters) -> {
                        header = header.withRefcountTable(offset, clusters);
                        file.write(ByteBuffer.wrap(header.encodeFields()), 0);
                    });
        }
        return refcounts;
    }

    void requireDataAccess() throws UnsupportedFeatureException {
        if (header.cryptMethod != Qcow2Header.CRYPT_NONE) {
            throw new UnsupportedFeatureException(storage.name() + ": encrypted qcow2 images ("
                    + (header.cryptMethod == Qcow2Header.CRYPT_AES ? "aes" : "luks")
                    + ") cannot be read or written by diskmorph");
        }
    }

    // ---- mapping ----

    @Override
    public Mapping mapping(long guestOffset, long maxLength) throws IOException {
        if (guestOffset < 0 || guestOffset >= virtualSize() || maxLength <= 0) {
            throw new InvalidRequestException(String.format("mapping request 0x%x+0x%x is outside the virtual "
                    + "disk (size %d)", guestOffset, maxLength, virtualSize()));
        }
        requireDataAccess();
        long end = guestOffset + Math.min(maxLength, virtualSize() - guestOffset);
        classify(guestOffset, end);
        int k = kind;
        long h = host;
        if (k == COMPRESSED) {
            long inCluster = guestOffset & (geo.clusterSize - 1);
            return new Mapping.Compressed(runEnd - guestOffset, L2Entry.compressedOffset(geo, compressedEntry),
                    L2Entry.compressedLength(geo, compressedEntry), inCluster);
        }
        long pos = runEnd;
        boolean fastPath = !geo.extendedL2 && dataFile == null;
        while (pos < end) {
            if (fastPath && (pos & (geo.clusterSize - 1)) == 0) {
                int l1Index = (int) (pos >>> geo.l1Shift);
                long l2Offset = L1Entry.l2Offset(l1.get(l1Index));
                if (l2Offset != 0) {
                    long[] words = l2Table(l1Index, l2Offset).words;
                    int index = (int) ((pos >>> geo.clusterBits) & (geo.l2Entries - 1));
                    int limit = (int) Math.min(geo.l2Entries,
                            index + ((end - pos + geo.clusterSize - 1) >>> geo.clusterBits));
                    int n = continueRun(words, index, limit, k, h >= 0 ? h + (pos - guestOffset) : -1);
                    pos = Math.min(end, pos + ((long) n << geo.clusterBits));
                    if (index + n < limit) {
                        break;
                    }
                    continue;
                }
            }
            classify(pos, end);
            if (kind != k || (h >= 0 && host != h + (pos - guestOffset))) {
                break;
            }
            pos = runEnd;
        }
        long len = pos - guestOffset;
        return switch (k) {
            case NORMAL -> new Mapping.Data(len, h);
            case ZERO_PLAIN, ZERO_ALLOC -> new Mapping.Zero(len, h);
            default -> new Mapping.Unallocated(len, h);
        };
    }

    /**
     * qemu 7.2's qcow2_co_block_status: at most INT_MAX bytes, and
     * qcow2_get_host_offset stops at the end of the L2 slice, which with
     * qemu-img's default l2-cache-entry-size (the cluster size) is the whole
     * L2 table.
     */
    @Override
    public long blockStatusLimit(long guestOffset) {
        long tableEnd = ((guestOffset >>> geo.l1Shift) + 1) << geo.l1Shift;
        return Math.min(Math.min(tableEnd, guestOffset + Integer.MAX_VALUE), virtualSize());
    }

    /**
     * Classifies the guest range starting at {@code pos}: sets {@link #kind},
     * {@link #host} (host offset of {@code pos}, -1 without one) and
     * {@link #runEnd} (end of the uniform part, within one cluster or one
     * unallocated L1 range, at most {@code limit}).
     */
    private void classify(long pos, long limit) throws IOException {
        int l1Index = (int) (pos >>> geo.l1Shift);
        long l2Offset = L1Entry.l2Offset(l1.get(l1Index));
        if (l2Offset == 0) {
            kind = UNALLOCATED;
            host = -1;
            runEnd = Math.min(limit, ((long) l1Index + 1) << geo.l1Shift);
            return;
        }
        long[] words = l2Table(l1Index, l2Offset).words;
        int index = (int) ((pos >>> geo.clusterBits) & (geo.l2Entries - 1));
        long clusterStart = pos & -geo.clusterSize;
        long inCluster = pos - clusterStart;
        long entry = words[index * geo.entryWords];
        long bitmap = geo.extendedL2 ? words[index * 2 + 1] : 0;
        boolean hasDataFile = dataFile != null;
        String problem = L2Entry.problem(geo, header.version, entry, bitmap, hasDataFile);
        if (problem != null) {
            throw corruptEntry(l2Offset, index, problem);
        }
        int type = L2Entry.type(entry, geo.extendedL2, hasDataFile);
        if (type == COMPRESSED) {
            kind = COMPRESSED;
            host = -1;
            compressedEntry = entry;
            runEnd = Math.min(limit, clusterStart + geo.clusterSize);
            return;
        }
        host = L2Entry.hasHost(type) ? L2Entry.hostOffset(entry) + inCluster : -1;
        if (!geo.extendedL2) {
            kind = type;
            runEnd = Math.min(limit, clusterStart + geo.clusterSize);
            return;
        }
        int sc = (int) (inCluster >>> geo.subclusterBits);
        int k = L2Entry.subclusterType(entry, bitmap, sc, true, hasDataFile);
        int next = sc + 1;
        while (next < L2Entry.SUBCLUSTERS && L2Entry.subclusterType(entry, bitmap, next, true, hasDataFile) == k) {
            next++;
        }
        kind = k;
        runEnd = Math.min(limit, clusterStart + ((long) next << geo.subclusterBits));
    }

    /**
     * How many standard L2 entries from {@code index} (below {@code limit})
     * continue a run of kind {@code k} whose host offset at {@code index} is
     * {@code expectHost} (-1 without one). Stops at anything unusual
     * (compressed, misaligned, a zero flag in v2), which {@link #classify}
     * then reports; the walk over big images stays one tight loop.
     */
    private int continueRun(long[] words, int index, int limit, int k, long expectHost) {
        long next = expectHost;
        int i = index;
        for (; i < limit; i++) {
            long e = words[i];
            if (L2Entry.type(e, false, false) != k || L2Entry.hostOffset(e) != (next < 0 ? 0 : next)) {
                break;
            }
            if (next >= 0) {
                next += geo.clusterSize;
            }
        }
        return i - index;
    }

    CorruptImageException corruptEntry(long l2Offset, int index, String problem) {
        return new CorruptImageException("qcow2 L2 table", l2Offset + (long) index * 8 * geo.entryWords,
                problem + " (L2 index " + index + ")");
    }

    /** The L2 table L1 entry {@code l1Index} points to, reading it (and adjacent ones) on a miss. */
    L2Table l2Table(int l1Index, long l2Offset) throws IOException {
        if (l2.peek(l2Offset) != null) {
            return l2.get(l2Offset);
        }
        if ((l2Offset & (geo.clusterSize - 1)) != 0) {
            throw new CorruptImageException("qcow2 L1 table", header.l1TableOffset + l1Index * 8L, String.format(
                    "L2 table offset 0x%x is not cluster-aligned (L1 index %d)", l2Offset, l1Index));
        }
        int count = 1;
        int max = (int) Math.max(1, Math.min(l2.capacity() / 2, READAHEAD_BYTES / geo.clusterSize));
        while (count < max && l1Index + count < l1.size()) {
            long next = L1Entry.l2Offset(l1.get(l1Index + count));
            if (next != l2Offset + count * geo.clusterSize || l2.peek(next) != null) {
                break;
            }
            count++;
        }
        return l2.getRun(l2Offset, count);
    }

    @Override
    protected void decompressCluster(Mapping.Compressed extent, ByteBuffer cluster) throws IOException {
        requireDataAccess();
        if (writer != null) {
            writer.flushCompressed(); // the cluster may still be in the writer's buffer
        }
        if (decompressedHost != extent.hostOffset() || decompressed == null) {
            int len = extent.compressedLength();
            if (compressed == null || compressed.length < len + 1) {
                compressed = new byte[len + 1];
            }
            byte[] src = compressed;
            storage.read(ByteBuffer.wrap(src, 0, len), extent.hostOffset());
            src[len] = 0; // the spare byte raw inflate may read past the stream
            byte[] dst = decompressed != null ? decompressed : new byte[(int) geo.clusterSize];
            decompressedHost = -1;
            String error = Compression.decompress(header.compressionType, src, len, dst);
            if (error != null) {
                throw new CorruptImageException("qcow2 compressed cluster", extent.hostOffset(), error);
            }
            decompressed = dst;
            decompressedHost = extent.hostOffset();
        }
        cluster.put(0, decompressed);
    }

    /** Forgets the decompressed cluster kept for sequential reads (after the image changed). */
    void dropDecompressed() {
        decompressedHost = -1;
    }

    // ---- metadata preallocation quirk ----

    /**
     * qemu's qcow2_detect_metadata_preallocation (block/qcow2-refcount.c):
     * the image counts as metadata-preallocated when at least
     * max(allocated_clusters * 10 / 9, allocated_clusters + 2) clusters below
     * the end of the file have a non-zero refcount, where allocated_clusters
     * is the file's allocated size in clusters. Decided once per open, like
     * qemu; errors count as "no".
     */
    @Override
    public boolean mapReportsHostHolesAsZero() throws IOException {
        if (metadataPreallocated == null) {
            metadataPreallocated = detectMetadataPreallocation();
        }
        return metadataPreallocated;
    }

    private boolean detectMetadataPreallocation() throws IOException {
        long fileLength = storage.size();
        long allocated = storage.allocatedBytes();
        if (allocated < 0) {
            return false;
        }
        long realClusters = allocated / geo.clusterSize;
        long threshold = Math.max(realClusters * 10 / 9, realClusters + 2);
        long endCluster = (fileLength + geo.clusterSize - 1) >>> geo.clusterBits;
        try {
            return refcounts().countUsed(endCluster, threshold) >= threshold;
        } catch (CorruptImageException e) {
            return false;
        }
    }

    // ---- writing (delegated) ----

    /** The writer, made on the first write (it may clear autoclear bits, so only once a write is valid). */
    private Qcow2Writer writer() throws IOException {
        requireDataAccess();
        if (context.forCheck()) {
            throw new ImageException(storage.name() + ": image is open for check; reopen it to write");
        }
        if (writer == null) {
            writer = new Qcow2Writer(this);
        }
        return writer;
    }

    @Override
    public void write(ByteBuffer src, long guestOffset) throws IOException {
        checkWritable();
        checkRange(guestOffset, src.remaining());
        writer().write(src, guestOffset);
    }

    @Override
    public void writeZeroes(long guestOffset, long length, boolean mayUnmap) throws IOException {
        checkWritable();
        checkRange(guestOffset, length);
        writer().writeZeroes(guestOffset, length, mayUnmap);
    }

    @Override
    public Compressor newCompressor() throws IOException {
        requireDataAccess();
        return new Qcow2Compressor(header.compressionType, (int) geo.clusterSize);
    }

    @Override
    public void writeCompressed(long guestOffset, byte[] data, int length) throws IOException {
        checkWritable();
        checkRange(guestOffset, Math.min(geo.clusterSize, header.size - guestOffset));
        if ((guestOffset & (geo.clusterSize - 1)) != 0 || length <= 0 || length >= geo.clusterSize
                || length > data.length) {
            throw new InvalidRequestException(String.format("compressed write of %d bytes at 0x%x: needs a "
                    + "cluster-aligned offset and fewer bytes than a cluster", length, guestOffset));
        }
        writer().writeCompressed(guestOffset, data, length);
    }

    /** Reads guest bytes this layer does not have (backing file or zeros); for copy-on-write. */
    void readBelow(ByteBuffer part, long guestOffset) throws IOException {
        readBacking(part, guestOffset);
    }

    @Override
    public void flush() throws IOException {
        if (writer != null) {
            writer.flush();
        }
    }

    @Override
    protected void closeImage() throws IOException {
        try {
            flush();
        } finally {
            if (dataFile != null) {
                dataFile.close();
            }
        }
    }

    // ---- check ----

    /**
     * qemu-img check for qcow2 ({@link Qcow2Checker}); after a repair the
     * tables are read again, the writer and caches start afresh.
     */
    @Override
    public CheckReport check(RepairMode repair, io.diskmorph.image.PhaseProgress progress) throws IOException {
        if (repair != RepairMode.NONE) {
            checkWritable();
        }
        flush();
        CheckReport r = Qcow2Checker.check(storage, repair, dataFile != null, progress);
        if (r.repaired) {
            writer = null;
            refcounts = null;
            metadataPreallocated = null;
            l2.clear();
            dropDecompressed();
            header = Qcow2Header.read(storage, context.forCheck());
            l1 = new L1Table(file, header.l1TableOffset, header.l1Size);
            SnapshotTable.Table snaps = SnapshotTable.readForCheck(storage, header);
            snapshots = snaps.snapshots();
            snapshotTableBytes = snaps.byteSize();
        }
        return r;
    }

    // ---- info ----

    @Override
    public ImageInfo info() throws IOException {
        List<ImageInfo.SnapshotInfo> snaps = new ArrayList<>();
        for (SnapshotTable.Snapshot s : snapshots) {
            snaps.add(new ImageInfo.SnapshotInfo(s.id(), s.name(), s.vmStateSize(), s.dateSec(), s.dateNsec(),
                    s.vmClockNsec(), s.icount()));
        }
        return new ImageInfo(storage.name(), format.name(), virtualSize(), storage.allocatedBytes(), geo.clusterSize,
                header.has(Qcow2Header.INCOMPAT_DIRTY), header.cryptMethod != Qcow2Header.CRYPT_NONE, backingName,
                Images.fullBackingFilename(context.path(), backingName), backingFmt, formatSpecific(), snaps);
    }

    @Override
    public Map<String, String> creationOptions() {
        Map<String, String> m = new LinkedHashMap<>();
        m.put("compat", header.version == 2 ? "0.10" : "1.1");
        m.put("cluster_size", Long.toString(geo.clusterSize));
        m.put("refcount_bits", Integer.toString(geo.refcountBits));
        if (header.version >= 3) {
            m.put("lazy_refcounts", Boolean.toString((header.compatible & Qcow2Header.COMPAT_LAZY_REFCOUNTS) != 0));
            m.put("extended_l2", Boolean.toString(geo.extendedL2));
            m.put("compression_type", header.compressionType == Qcow2Header.COMPRESSION_ZSTD ? "zstd" : "zlib");
        }
        return m;
    }

    /** qemu 7.2's format-specific keys, in the order qemu-img prints them. */
    private Map<String, Object> formatSpecific() throws IOException {
        Map<String, Object> m = new LinkedHashMap<>();
        String compression = header.compressionType == Qcow2Header.COMPRESSION_ZSTD ? "zstd" : "zlib";
        if (header.version == 2) {
            m.put("compat", "0.10");
            m.put("compression-type", compression);
            m.put("refcount-bits", geo.refcountBits);
            return m;
        }
        m.put("compat", "1.1");
        m.put("compression-type", compression);
        m.put("lazy-refcounts", (header.compatible & Qcow2Header.COMPAT_LAZY_REFCOUNTS) != 0);
        BitmapDirectory.Extension ext = BitmapDirectory.extension(header);
        if (ext != null) {
            List<Object> list = new ArrayList<>();
            for (BitmapDirectory.Bitmap b : BitmapDirectory.read(storage, ext)) {
                Map<String, Object> bm = new LinkedHashMap<>();
                List<String> flags = new ArrayList<>();
                if ((b.flags() & BitmapDirectory.FLAG_IN_USE) != 0) {
                    flags.add("in-use");
                }
                if ((b.flags() & BitmapDirectory.FLAG_AUTO) != 0) {
                    flags.add("auto");
                }
                bm.put("flags", flags);
                bm.put("name", b.name());
                bm.put("granularity", 1L << b.granularityBits());
                list.add(bm);
            }
            m.put("bitmaps", list);
        }
        m.put("refcount-bits", geo.refcountBits);
        if (header.has(Qcow2Header.INCOMPAT_DATA_FILE)) {
            if (header.dataFile() != null) {
                m.put("data-file", header.dataFile());
            }
            m.put("data-file-raw", (header.autoclear & Qcow2Header.AUTOCLEAR_DATA_FILE_RAW) != 0);
        }
        m.put("corrupt", header.has(Qcow2Header.INCOMPAT_CORRUPT));
        m.put("extended-l2", geo.extendedL2);
        return m;
    }

    // ---- relocation (in place to raw) ----

    @Override
    public long unitSize() {
        return geo.clusterSize;
    }

    @Override
    public String notRelocatable() throws IOException {
        return Qcow2Relocation.whyNot(this);
    }

    @Override
    public long relocatedMetadataBytes(long metadataOffset) throws IOException {
        return Qcow2Relocation.layout(this, metadataOffset).bytes();
    }

    @Override
    public Relocation relocate(Storage writable, long metadataOffset) throws IOException {
        return Qcow2Relocation.start(this, writable, metadataOffset);
    }

    // ---- the picture of the file (diskmorph layout) ----

    @Override
    public void metadataRegions(Sink sink) throws IOException {
        long c = geo.clusterSize;
        sink.region("header", 0, c);
        sink.region("L1 table", header.l1TableOffset, Math.ceilDiv(8L * header.l1Size, c) * c);
        for (int i = 0; i < l1.size(); i++) {
            long l2Offset = L1Entry.l2Offset(l1.get(i));
            if (l2Offset != 0) {
                sink.region("L2 tables", l2Offset, c);
            }
        }
        long tableBytes = header.refcountTableClusters * c;
        sink.region("refcount table", header.refcountTableOffset, tableBytes);
        java.nio.ByteBuffer page = java.nio.ByteBuffer.allocate((int) c);
        for (long at = 0; at < tableBytes; at += c) {
            page.clear();
            storage().read(page, header.refcountTableOffset + at);
            for (int k = 0; k + 8 <= c; k += 8) {
                long block = page.getLong(k) & ~0x1ffL; // bits 0-8 are reserved
                if (block != 0) {
                    sink.region("refcount blocks", block, c);
                }
            }
        }
        if (header.nbSnapshots > 0 && snapshotTableBytes > 0) {
            sink.region("snapshot table", header.snapshotsOffset, snapshotTableBytes);
        }
    }
}
