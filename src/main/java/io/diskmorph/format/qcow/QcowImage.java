package io.diskmorph.format.qcow;

import io.diskmorph.image.AbstractDiskImage;
import io.diskmorph.image.CheckReport;
import io.diskmorph.image.CompressedClusterWriter;
import io.diskmorph.image.CorruptImageException;
import io.diskmorph.image.ImageException;
import io.diskmorph.image.ImageFormat;
import io.diskmorph.image.ImageInfo;
import io.diskmorph.image.Images;
import io.diskmorph.image.InvalidRequestException;
import io.diskmorph.image.Mapping;
import io.diskmorph.image.OpenContext;
import io.diskmorph.image.RelocatableImage;
import io.diskmorph.image.RepairMode;
import io.diskmorph.image.UnsupportedFeatureException;
import io.diskmorph.image.cache.MetadataCache;
import io.diskmorph.image.cache.SyncTracker;
import io.diskmorph.storage.Storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.zip.DataFormatException;
import java.util.zip.Deflater;
import java.util.zip.Inflater;

/**
 * An open qcow (version 1) image. Lookups go L1 -> L2 through two bounded
 * caches (L1 pages of 4 KiB, clipped at the table's end since the L1 is
 * only 8-byte aligned and anything may follow it; whole L2 tables).
 * Allocating writes append at the end of the file rounded up to a cluster,
 * as qemu does: an L2 table first when the L1 entry is empty, then the data
 * clusters. Table updates stay cached until {@link #flush} or an eviction,
 * in the order data, sync, L2 tables, sync, L1 pages, sync (qemu writes the
 * L1 entry before the zeroed L2 table, each synced; a crash between them
 * leaves an L1 entry on bytes past the end, which read as zeros there).
 * Unlike qemu 7.2, a write into part of a new cluster fills the rest of it
 * from what the guest saw there (the backing file, or a compressed
 * cluster's content); qemu leaves zeros there unless the cluster was
 * compressed, which is why it gives images with a backing file 512-byte
 * clusters.
 */
final class QcowImage extends AbstractDiskImage implements RelocatableImage, CompressedClusterWriter,
        io.diskmorph.image.MetadataRegions {
    /** Bytes of one cached L1 page. */
    private static final int L1_PAGE_BYTES = 4096;
    private static final long L1_CACHE_BYTES = 1L << 20;
    private static final long L2_CACHE_BYTES = 4L << 20;

    private final QcowFormat format;
    final QcowHeader header;
    private final long c;
    private final SyncTracker file;
    private final MetadataCache<Table> l1Pages;
    /** Written after the data they map, before the L1 pages that point at them. */
    private final MetadataCache<Table> l2Tables;
    /** Where the next allocation starts, rounded up to a cluster: qemu's bdrv_getlength. */
    private long fileEnd;
    /** The last cluster decompressed, for sequential reads of compressed data. */
    private long decompressedEntry = -1;
    private byte[] decompressed;

    private QcowImage(QcowFormat format, Storage storage, OpenContext context, QcowHeader header, long fileLength) {
        super(storage, context);
        this.format = format;
        this.header = header;
        this.c = header.clusterSize();
        this.fileEnd = fileLength;
        this.file = new SyncTracker(storage);
        this.l1Pages = new MetadataCache<>("qcow L1 table page", file, L1_PAGE_BYTES,
                (int) (L1_CACHE_BYTES / L1_PAGE_BYTES), () -> new Table(L1_PAGE_BYTES));
        this.l1Pages.clipAt(header.l1TableOffset + header.l1Bytes());
        int l2Bytes = header.l2TableBytes();
        this.l2Tables = new MetadataCache<>("qcow L2 table", file, l2Bytes,
                (int) Math.max(4, L2_CACHE_BYTES / l2Bytes), () -> new Table(l2Bytes));
    }

    static QcowImage open(QcowFormat format, Storage storage, OpenContext context) throws IOException {
        long length = storage.size();
        QcowHeader h = QcowHeader.read(storage.readBytes(0, (int) Math.min(QcowHeader.BYTES, length)), length);
        QcowImage img = new QcowImage(format, storage, context, h, length);
        if (h.hasBackingFile()) {
            img.backingName = decodeName(storage.readBytes(h.backingFileOffset, h.backingFileSize));
        }
        return img;
    }

    /** qemu keeps the name as a C string: it ends at the first NUL. */
    static String decodeName(ByteBuffer b) {
        byte[] bytes = new byte[b.remaining()];
        b.get(bytes);
        int n = 0;
        while (n < bytes.length && bytes[n] != 0) {
            n++;
        }
        return new String(bytes, 0, n, StandardCharsets.UTF_8);
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
        return c;
    }

    // ---- lookups --------------------------------------------------------------------------

    long l1Entry(long index) throws IOException {
        long at = header.l1TableOffset + index * 8;
        long page = header.l1TableOffset + (index * 8) / L1_PAGE_BYTES * L1_PAGE_BYTES;
        return l1Pages.get(page).entries[(int) ((at - page) / 8)];
    }

    private void setL1Entry(long index, long value) throws IOException {
        long at = header.l1TableOffset + index * 8;
        long page = header.l1TableOffset + (index * 8) / L1_PAGE_BYTES * L1_PAGE_BYTES;
        Table t = l1Pages.get(page);
        t.entries[(int) ((at - page) / 8)] = value;
        l1Pages.markDirty(t);
        l1Pages.dependOn(l2Tables);
    }

    /** The L2 table of an L1 index, 0 for none; a table past the end of the file is corruption. */
    long l2Table(long l1Index) throws IOException {
        long l2 = l1Entry(l1Index);
        if (l2 != 0 && (l2 < 0 || l2 > fileEnd - header.l2TableBytes())) {
            throw new CorruptImageException("qcow L1 table", header.l1TableOffset + 8 * l1Index, String.format(
                    "L2 table offset 0x%x lies past the end of the file (%d bytes)", l2, fileEnd));
        }
        return l2;
    }

    long l2Entry(long l2, long index) throws IOException {
        return l2Tables.get(l2).entries[(int) index];
    }

    private void setL2Entry(long l2, long index, long value) throws IOException {
        Table t = l2Tables.get(l2);
        t.entries[(int) index] = value;
        l2Tables.markDirty(t);
        l2Tables.dependOn(file);
    }

    /**
     * An uncompressed cluster qemu can read: sector aligned (qemu fails the
     * read with EIO otherwise) and, stricter than qemu (which reads zeros
     * there), inside the file.
     */
    boolean isDataClusterValid(long entry) {
        return entry > 0 && (entry & 511) == 0 && entry <= fileEnd - c;
    }

    boolean isCompressedValid(long entry) {
        long off = header.compressedOffset(entry);
        int n = header.compressedBytes(entry);
        return off > 0 && n > 0 && off <= fileEnd - n;
    }

    private CorruptImageException badEntry(long l2, long index, long entry) {
        return new CorruptImageException("qcow L2 table", l2 + 8 * index, String.format(
                "%s cluster entry 0x%x is invalid (not sector aligned, or past the end of the file at %d bytes)",
                entry < 0 ? "compressed" : "data", entry, fileEnd));
    }

    /** qemu 7.2's qcow_co_block_status answers one cluster at a time. */
    @Override
    public long blockStatusLimit(long guestOffset) {
        return Math.min(guestOffset - guestOffset % c + c, virtualSize());
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
        if (l2 == 0) {
            return new Mapping.Unallocated(len);
        }
        long index = guestOffset % cov / c;
        long inCluster = guestOffset % c;
        long first = l2Entry(l2, index);
        if (first < 0) {
            if (!isCompressedValid(first)) {
                throw badEntry(l2, index, first);
            }
            return new Mapping.Compressed(Math.min(len, c - inCluster), header.compressedOffset(first),
                    header.compressedBytes(first), inCluster);
        }
        if (first != 0 && !isDataClusterValid(first)) {
            throw badEntry(l2, index, first);
        }
        long wanted = (inCluster + len + c - 1) / c;
        long n = 1;
        for (long last = first; n < wanted; n++) {
            long e = l2Entry(l2, index + n);
            if (first == 0 ? e != 0 : (e != last + c || !isDataClusterValid(e))) {
                break;
            }
            last = e;
        }
        len = Math.min(len, n * c - inCluster);
        return first == 0 ? new Mapping.Unallocated(len) : new Mapping.Data(len, first + inCluster);
    }

    /** Raw deflate (qemu's inflateInit2 with windowBits -12) into exactly one cluster. */
    @Override
    protected void decompressCluster(Mapping.Compressed extent, ByteBuffer cluster) throws IOException {
        long key = extent.hostOffset();
        if (decompressed == null || decompressedEntry != key) {
            int len = extent.compressedLength();
            byte[] src = new byte[len + 1]; // raw inflate may ask for one byte past the stream
            storage.read(ByteBuffer.wrap(src, 0, len), extent.hostOffset());
            byte[] dst = decompressed != null ? decompressed : new byte[(int) c];
            decompressedEntry = -1;
            Inflater inf = new Inflater(true);
            int done = 0;
            try {
                inf.setInput(src, 0, src.length);
                while (done < dst.length) {
                    int n = inf.inflate(dst, done, dst.length - done);
                    done += n;
                    if (n == 0 && (inf.finished() || inf.needsInput() || inf.needsDictionary())) {
                        break;
                    }
                }
            } catch (DataFormatException e) {
                throw new CorruptImageException("qcow compressed cluster", extent.hostOffset(),
                        "invalid deflate data (" + e.getMessage() + ")");
            } finally {
                inf.end();
            }
            if (done != dst.length) {
                throw new CorruptImageException("qcow compressed cluster", extent.hostOffset(),
                        "the deflate stream ends after " + done + " of " + dst.length + " bytes");
            }
            decompressed = dst;
            decompressedEntry = key;
        }
        cluster.put(0, decompressed);
    }

    // ---- writes ---------------------------------------------------------------------------

    @Override
    public void write(ByteBuffer src, long guestOffset) throws IOException {
        checkWritable();
        checkRange(guestOffset, src.remaining());
        long cov = header.l2Coverage();
        long pos = guestOffset;
        while (src.hasRemaining()) {
            long len = Math.min(src.remaining(), cov - pos % cov);
            long l1Index = pos / cov;
            long l2 = l2Table(l1Index);
            long index = pos % cov / c;
            long inCluster = pos % c;
            long clusters = (inCluster + len + c - 1) / c;
            long first = l2 == 0 ? 0 : l2Entry(l2, index);
            long n = 1;
            int bytes;
            if (first == 0 || first < 0) {
                if (first < 0 && !isCompressedValid(first)) {
                    throw badEntry(l2, index, first);
                }
                // a run of unallocated clusters (a compressed one is rewritten on its own)
                while (first == 0 && n < clusters && (l2 == 0 || l2Entry(l2, index + n) == 0)) {
                    n++;
                }
                bytes = (int) Math.min(len, n * c - inCluster);
                long last = n == 1 ? first : 0;
                allocatingWrite(src.slice(src.position(), bytes), pos, l1Index, index, n, first, last);
            } else {
                if (!isDataClusterValid(first)) {
                    throw badEntry(l2, index, first);
                }
                for (long host = first; n < clusters; n++) {
                    long e = l2Entry(l2, index + n);
                    if (e != host + c || !isDataClusterValid(e)) {
                        break;
                    }
                    host = e;
                }
                bytes = (int) Math.min(len, n * c - inCluster);
                file.write(src.slice(src.position(), bytes), first + inCluster);
            }
            src.position(src.position() + bytes);
            pos += bytes;
        }
    }

    /**
     * Writes {@code data} at guest {@code pos} into {@code n} new clusters
     * appended to the file (after a new L2 table when the L1 entry is
     * empty, as qemu allocates); the untouched head and tail of the first
     * and last cluster keep what the guest saw there.
     */
    private void allocatingWrite(ByteBuffer data, long pos, long l1Index, long index, long n, long firstEntry,
                                 long lastEntry) throws IOException {
        long l2 = ensureL2(l1Index);
        long host = allocate(n * c);
        long clusterStart = pos - pos % c;
        long head = pos - clusterStart;
        long end = pos + data.remaining();
        long tail = clusterStart + n * c - end;
        if (head > 0) {
            file.write(previousContent(clusterStart, (int) head, firstEntry), host);
        }
        if (tail > 0) {
            file.write(previousContent(end, (int) tail, lastEntry), host + n * c - tail);
        }
        file.write(data, host + head);
        for (long i = 0; i < n; i++) {
            setL2Entry(l2, index + i, host + i * c);
        }
    }

    /** What the guest read at [guestOffset, +length) of a cluster with this entry (zeros past the disk end). */
    private ByteBuffer previousContent(long guestOffset, int length, long entry) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(length);
        long inDisk = Math.max(0, Math.min(length, virtualSize() - guestOffset));
        if (inDisk == 0) {
            return b;
        }
        if (entry < 0) {
            ByteBuffer cluster = ByteBuffer.allocate((int) c);
            decompressCluster(new Mapping.Compressed(c, header.compressedOffset(entry), header.compressedBytes(entry),
                    0), cluster);
            b.put(0, cluster, (int) (guestOffset % c), (int) inDisk);
        } else {
            readBacking(b.slice(0, (int) inDisk), guestOffset);
        }
        return b;
    }

    /** The L2 table of an L1 index; a new one goes at the end of the file, zeroed, linked in the cached L1. */
    private long ensureL2(long l1Index) throws IOException {
        long l2 = l2Table(l1Index);
        if (l2 == 0) {
            l2 = allocate(header.l2TableBytes());
            l2Tables.create(l2);
            setL1Entry(l1Index, l2);
        }
        return l2;
    }

    /** qemu's allocation: the end of the file rounded up to a cluster. */
    private long allocate(long bytes) throws IOException {
        long at = (fileEnd + c - 1) & -c;
        if (at > Long.MAX_VALUE - bytes) {
            throw new ImageException(storage.name() + ": qcow image file would grow past 2^63 bytes");
        }
        fileEnd = at + bytes;
        return at;
    }

    // ---- compressed writes (convert -c) ----

    /** Raw deflate; qemu's reader keeps a 4 KiB window, which bounds the clusters compressed here. */
    @Override
    public Compressor newCompressor() {
        return new QcowCompressor((int) c);
    }

    /**
     * qemu's qcow_co_pwritev_compressed: the stream goes at the end of the
     * file rounded up to a sector (qemu's file length is whole sectors),
     * not to a cluster, and the file ends with it; the entry holds its offset and
     * length; the cluster's previous content is released (qcow counts no
     * references: unused).
     */
    @Override
    public void writeCompressed(long guestOffset, byte[] data, int length) throws IOException {
        checkWritable();
        checkRange(guestOffset, Math.min(c, virtualSize() - guestOffset));
        if (guestOffset % c != 0 || length <= 0 || length >= c) {
            throw new IllegalArgumentException("compressed write of " + length + " bytes at " + guestOffset);
        }
        long cov = header.l2Coverage();
        long l2 = ensureL2(guestOffset / cov);
        long host = (fileEnd + 511) & ~511L;
        if (host > header.compressedOffsetMask() - length) {
            throw new ImageException(storage.name() + ": qcow image file too large for a compressed cluster's offset");
        }
        fileEnd = host + length;
        file.write(ByteBuffer.wrap(data, 0, length), host);
        setL2Entry(l2, guestOffset % cov / c, header.compressedEntry(host, length));
        decompressedEntry = -1;
    }

    /** One thread's deflater (windowBits 15: a cluster of at most 4 KiB never reaches past 4 KiB back). */
    private static final class QcowCompressor implements Compressor {
        private final int clusterSize;
        private final Deflater deflater = new Deflater(Deflater.DEFAULT_COMPRESSION, true);
        private byte[] input;

        QcowCompressor(int clusterSize) {
            this.clusterSize = clusterSize;
        }

        @Override
        public int compress(ByteBuffer cluster, byte[] out) {
            if (clusterSize > 4096) {
                return -1; // qemu inflates with a 4 KiB window: larger clusters are stored uncompressed
            }
            if (input == null) {
                input = new byte[clusterSize];
            }
            cluster.get(cluster.position(), input, 0, clusterSize);
            deflater.reset();
            deflater.setInput(input, 0, clusterSize);
            deflater.finish();
            int n = deflater.deflate(out, 0, clusterSize - 1);
            return deflater.finished() ? n : -1; // as qemu: only what fits in cluster_size - 1 bytes
        }

        @Override
        public void close() {
            deflater.end();
        }
    }

    /**
     * qcow has no zero clusters: a range that already reads as zeros
     * (unallocated, no backing file) stays as it is; the rest gets zeros
     * written.
     */
    @Override
    public void writeZeroes(long guestOffset, long length, boolean mayUnmap) throws IOException {
        checkWritable();
        checkRange(guestOffset, length);
        long cov = header.l2Coverage();
        long pos = guestOffset;
        long end = guestOffset + length;
        while (pos < end) {
            long n = Math.min(end, pos - pos % c + c) - pos;
            long l2 = l2Table(pos / cov);
            boolean readsZero = backingName == null && (l2 == 0 || l2Entry(l2, pos % cov / c) == 0);
            if (!readsZero) {
                super.writeZeroes(pos, n, mayUnmap);
            }
            pos += n;
        }
    }

    @Override
    public void flush() throws IOException {
        if (isReadOnly()) {
            return;
        }
        l1Pages.flush();
        l2Tables.flush();
        file.flush();
    }

    @Override
    protected void closeImage() throws IOException {
        flush();
    }

    // ---- info, check ----------------------------------------------------------------------

    @Override
    public ImageInfo info() throws IOException {
        String full = Images.fullBackingFilename(context.path(), backingName);
        return new ImageInfo(storage.name(), QcowFormat.NAME, virtualSize(), storage.allocatedBytes(), c, false,
                false, backingName, full, null, null, List.of());
    }

    /**
     * qemu-img 7.2 has no qcow check; this one looks at the structure
     * (see {@link QcowChecker}) and repairs nothing.
     */
    @Override
    public CheckReport check(RepairMode repair, io.diskmorph.image.PhaseProgress progress) throws IOException {
        if (repair != RepairMode.NONE) {
            throw new UnsupportedFeatureException("qcow images cannot be repaired (qemu-img has no qcow check "
                    + "either); copy it with convert to rebuild its tables");
        }
        if (!isReadOnly()) {
            flush();
        }
        return QcowChecker.run(this, fileEnd, progress);
    }

    long fileEnd() {
        return fileEnd;
    }

    /** The header with the backing file name, the L1 table, the L2 tables (for {@code diskmorph layout}). */
    @Override
    public void metadataRegions(Sink sink) throws IOException {
        sink.region("header", 0, QcowHeader.BYTES);
        if (header.hasBackingFile() && header.backingFileSize > 0) {
            sink.region("backing file name", header.backingFileOffset, header.backingFileSize);
        }
        sink.region("L1 table", header.l1TableOffset, header.l1Bytes());
        for (long i = 0; i < header.l1Entries(); i++) {
            long l2 = l2Table(i);
            if (l2 != 0) {
                sink.region("L2 tables", l2, header.l2TableBytes());
            }
        }
    }

    // ---- relocation (in place to raw) ----

    @Override
    public long unitSize() {
        return c;
    }

    @Override
    public String notRelocatable() {
        return QcowRelocation.whyNot(this);
    }

    @Override
    public long relocatedMetadataBytes(long metadataOffset) throws IOException {
        return QcowRelocation.metadataBytes(this, metadataOffset);
    }

    @Override
    public Relocation relocate(Storage writable, long metadataOffset) throws IOException {
        return QcowRelocation.start(this, writable, metadataOffset);
    }
}
