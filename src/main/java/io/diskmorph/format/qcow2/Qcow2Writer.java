package io.diskmorph.format.qcow2;

import io.diskmorph.image.CorruptImageException;
import io.diskmorph.image.ImageException;
import io.diskmorph.image.Mapping;
import io.diskmorph.image.UnsupportedFeatureException;
import io.diskmorph.image.cache.SyncTracker;
import io.diskmorph.image.cache.WriteDependency;
import io.diskmorph.storage.Storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.Arrays;

import static io.diskmorph.format.qcow2.L2Entry.ALL_ALLOCATED;
import static io.diskmorph.format.qcow2.L2Entry.ALL_ZEROES;

/**
 * Guest writes into a qcow2 image: allocation at the end of the file,
 * copy-on-write of clusters and L2 tables whose refcount is above one
 * (snapshots), compressed clusters rewritten uncompressed, zero clusters,
 * extended L2 subclusters, compressed cluster writes (convert -c, packed
 * back to back). Refcounts stay exact (no lazy refcounts, the
 * dirty bit is never set).
 *
 * <p>Crash safety: data is written at once into clusters no metadata points
 * to yet (or in place into a cluster with refcount 1); metadata is cached,
 * and every change says what must be durable before it is written (the
 * caches' dependencies): an L2 entry waits for its data and for the
 * refcounts of new clusters (blocks, then the refcount table or header that
 * points to new blocks), an L1 entry for the L2 table it points to, and a
 * refcount decrement for the table that dropped the reference. An evicted
 * table and {@link #flush} write in that order: data, sync, refcount blocks,
 * sync, refcount table / header, sync, L2 tables, sync, L1, sync, refcount
 * decrements, sync. A crash can leak clusters, never leave a reference to a
 * cluster with a refcount too low.
 */
final class Qcow2Writer {
    /** Writes are processed in chunks this large; caches are flushed between chunks when full. */
    private static final long CHUNK = 16L << 20;
    private static final int ZERO_BUFFER = 1 << 20;

    private final Qcow2Image img;
    private final Storage storage;
    private final SyncTracker file;
    private final Qcow2Geometry geo;
    private final long clusterSize;
    private final Refcounts refcounts;
    /** Data and tables must not land on other metadata of a possibly hostile image. */
    private final MetadataOverlap overlap;
    private final boolean hasBacking;
    private ByteBuffer zeros;
    /**
     * One cluster of scratch for writes that cover part of a cluster (edges
     * filled around the guest's bytes) or rewrite a whole one: a new array
     * per write touched fresh heap pages all through a copy (10 MiB of the
     * bench's raw -> qcow2, a page fault each 4 KiB), this one stays warm.
     * Safe to reuse: storage writes are synchronous and one thread writes.
     */
    private byte[] scratch;
    /** Guest data an L2 entry is about to map: issued and durable before the entry is written. */
    private final WriteDependency dataWrites = this::flushData;

    // one pending data write, extended while guest clusters land on adjacent host clusters
    private ByteBuffer pendingSrc;
    private int pendingPos;
    private int pendingLen;
    private long pendingHost = -1;

    // compressed clusters packed back to back, written in one request
    private static final int COMPRESSED_BUFFER = 1 << 20;
    private ByteBuffer compressedBuf;
    private long compressedHost = -1;

    Qcow2Writer(Qcow2Image img) throws IOException {
        this.img = img;
        this.storage = img.storage();
        this.file = img.file;
        this.geo = img.geo;
        this.clusterSize = geo.clusterSize;
        Qcow2Header h = img.header;
        if (BitmapDirectory.extension(h) != null) {
            throw new UnsupportedFeatureException(storage.name() + ": qcow2 image has persistent dirty bitmaps; "
                    + "diskmorph cannot keep them consistent, so it does not write to it");
        }
        this.hasBacking = img.backingFileName() != null;
        if (hasBacking && img.backing() == null) {
            throw new ImageException(storage.name() + ": cannot write: the backing file is not open (partial "
                    + "cluster writes copy from it)");
        }
        this.refcounts = img.refcounts();
        this.overlap = MetadataOverlap.of(storage, h, refcounts.tableOffset(),
                refcounts.tableClusters() * clusterSize, refcounts.tableEntries(), refcounts.tableEntries().length,
                h.snapshotsOffset, img.snapshotTableBytes, img.snapshots());
        refcounts.setOverlapCheck(overlap);
        refcounts.reserveBelow(knownMetadataEnd(img, overlap));
        if (h.autoclear != 0) {
            // qemu clears autoclear bits it does not maintain before changing the image (qcow2.rst)
            img.header = h.withAutoclear(0);
            file.write(ByteBuffer.wrap(img.header.encodeFields()), 0);
            file.flush();
        }
    }

    // ---- guest writes ----

    void write(ByteBuffer src, long guestOffset) throws IOException {
        img.dropDecompressed();
        flushCompressed(); // a partial write may read a compressed cluster back
        long pos = guestOffset;
        long sinceFlushCheck = 0;
        try {
            while (src.hasRemaining()) {
                long cluster = pos & -clusterSize;
                int from = (int) (pos - cluster);
                int n = (int) Math.min(src.remaining(), clusterSize - from);
                writeCluster(cluster, from, src, src.position(), n);
                src.position(src.position() + n);
                pos += n;
                sinceFlushCheck += n;
                if (sinceFlushCheck >= CHUNK) {
                    sinceFlushCheck = 0;
                    flushPending();
                    flushIfCachesFull();
                }
            }
            flushPending();
        } catch (IOException | RuntimeException | Error e) {
            // the caller's buffer is not ours after a failed write (a copy gives a mapped source range
            // back, and unmaps it): what was still pending from it is not written later from there
            pendingHost = -1;
            pendingSrc = null;
            throw e;
        }
        flushIfCachesFull();
    }

    /**
     * Writes {@code n} bytes of {@code src} (from index {@code at}) into the
     * guest cluster at {@code cluster}, starting {@code from} bytes into it.
     */
    private void writeCluster(long cluster, int from, ByteBuffer src, int at, int n) throws IOException {
        int to = from + n;
        L2Table t = writableL2((int) (cluster >>> geo.l1Shift));
        int index = (int) ((cluster >>> geo.clusterBits) & (geo.l2Entries - 1));
        int wi = index * geo.entryWords;
        long entry = t.words[wi];
        long bitmap = geo.extendedL2 ? t.words[wi + 1] : 0;
        validate(t, index, entry, bitmap);
        boolean compressed = L2Entry.isCompressed(entry);
        long oldHost = compressed ? 0 : L2Entry.hostOffset(entry);

        // the units (subclusters, or the whole cluster) the write touches
        int unitBits = geo.subclusterBits;
        int firstUnit = from >>> unitBits;
        int lastUnit = (to - 1) >>> unitBits;
        long touched = geo.extendedL2 ? L2Entry.subclusterMask(firstUnit, lastUnit) : 0;
        int regionStart = firstUnit << unitBits;
        int regionEnd = (lastUnit + 1) << unitBits;

        boolean inPlace = oldHost != 0 && refcountOf(oldHost, t, index) == 1;
        long target;
        if (inPlace) {
            overlap.refuseDataWrite(oldHost);
            target = oldHost;
        } else {
            target = refcounts.allocate();
        }

        if (compressed) {
            // rewrite the whole cluster uncompressed
            byte[] buf = scratch();
            img.decompressCluster(new Mapping.Compressed(clusterSize, L2Entry.compressedOffset(geo, entry),
                    L2Entry.compressedLength(geo, entry), 0), ByteBuffer.wrap(buf));
            src.get(at, buf, from, n);
            flushPending();
            writeData(ByteBuffer.wrap(buf), target);
            freeEntry(entry, 0);
            bitmap = ALL_ALLOCATED;
        } else if (oldHost != 0 && !inPlace) {
            // shared cluster (snapshot): copy it, then write over the copy
            byte[] buf = scratch();
            flushPending();
            img.dataStorage().read(ByteBuffer.wrap(buf), oldHost);
            fillEdges(buf, 0, cluster, from, to, regionStart, regionEnd, entry, bitmap);
            src.get(at, buf, from, n);
            writeData(ByteBuffer.wrap(buf), target);
            refcounts.free(oldHost >>> geo.clusterBits, 1, img.l2);
        } else {
            // a new cluster (nothing there before) or in place: partial units around the write need what
            // the guest sees there now, unless the unit already holds its own data in place
            boolean headFill = from > regionStart && (!inPlace || unitState(entry, bitmap, from) != L2Entry.NORMAL);
            boolean tailFill = to < regionEnd && (!inPlace || unitState(entry, bitmap, to - 1) != L2Entry.NORMAL);
            int start = headFill ? regionStart : from;
            int end = tailFill ? regionEnd : to;
            if (start == from && end == to) {
                queueData(src, at, n, target + from);
            } else {
                // every byte of [start, end) comes from the fills or the source: the scratch's old bytes never leak
                byte[] buf = scratch();
                if (headFill) {
                    fillUnit(buf, start, cluster, regionStart, from, unitState(entry, bitmap, from));
                }
                if (tailFill) {
                    fillUnit(buf, start, cluster, to, regionEnd, unitState(entry, bitmap, to - 1));
                }
                src.get(at, buf, from - start, n);
                flushPending();
                writeData(ByteBuffer.wrap(buf, 0, end - start), target + start);
            }
        }

        t.words[wi] = L2Entry.normal(target);
        if (geo.extendedL2) {
            t.words[wi + 1] = compressed ? ALL_ALLOCATED : (bitmap | touched) & ~(touched << 32);
        }
        mapsNewData(t, !inPlace);
    }

    private byte[] scratch() {
        if (scratch == null) {
            scratch = new byte[(int) clusterSize];
        }
        return scratch;
    }

    /**
     * An entry of {@code t} now maps data just written: the table is written
     * after that data and, for {@code newCluster}, after its refcount.
     */
    private void mapsNewData(L2Table t, boolean newCluster) {
        img.l2.markDirty(t);
        if (newCluster) {
            img.l2.dependOn(refcounts.writes());
        }
        img.l2.dependOn(dataWrites);
    }

    /**
     * Fills the parts of the first and last touched unit that the write does
     * not cover with what the guest sees there now (zeros, or the backing
     * file), unless the unit holds data of its own. {@code buf} starts at
     * byte {@code bufStart} of the cluster.
     */
    private void fillEdges(byte[] buf, int bufStart, long cluster, int from, int to, int regionStart,
                           int regionEnd, long entry, long bitmap) throws IOException {
        if (from > regionStart) {
            fillUnit(buf, bufStart, cluster, regionStart, from, unitState(entry, bitmap, regionStart));
        }
        if (to < regionEnd) {
            fillUnit(buf, bufStart, cluster, to, regionEnd, unitState(entry, bitmap, to - 1));
        }
    }

    /** Fills [start, end) of the cluster with what the guest sees there, a unit of type {@code type}. */
    private void fillUnit(byte[] buf, int bufStart, long cluster, int start, int end, int type) throws IOException {
        switch (type) {
            case L2Entry.ZERO_PLAIN, L2Entry.ZERO_ALLOC -> Arrays.fill(buf, start - bufStart, end - bufStart, (byte) 0);
            case L2Entry.UNALLOCATED, L2Entry.UNALLOCATED_ALLOC -> img.readBelow(
                    ByteBuffer.wrap(buf, start - bufStart, end - start).slice(), cluster + start);
            default -> {
                // the unit's own data is already in buf (a copy of the old cluster)
            }
        }
    }

    /** What the guest sees in the unit holding byte {@code inCluster} (non-compressed entries). */
    private int unitState(long entry, long bitmap, int inCluster) {
        return L2Entry.subclusterType(entry, bitmap, inCluster >>> geo.subclusterBits, geo.extendedL2, false);
    }

    private void validate(L2Table t, int index, long entry, long bitmap) throws IOException {
        String problem = L2Entry.problem(geo, img.header.version, entry, bitmap, false);
        if (problem != null) {
            throw img.corruptEntry(t.hostOffset(), index, problem);
        }
    }

    private long refcountOf(long host, L2Table t, int index) throws IOException {
        long r = refcounts.get(host >>> geo.clusterBits);
        if (r == 0) {
            throw img.corruptEntry(t.hostOffset(), index, String.format("data cluster 0x%x is in use but has "
                    + "refcount 0", host));
        }
        return r;
    }

    /**
     * The L2 table for L1 entry {@code l1Index}, private to the active L1:
     * created when missing, copied when shared with a snapshot (its refcount
     * is above one; the copy's entries keep their refcounts, which already
     * count both tables).
     */
    private L2Table writableL2(int l1Index) throws IOException {
        long l1e = img.l1.get(l1Index);
        long off = L1Entry.l2Offset(l1e);
        if (off == 0) {
            L2Table t = newL2(l1Index);
            return t;
        }
        L2Table t = img.l2Table(l1Index, off);
        if (t.writable) {
            return t;
        }
        long r = refcounts.get(off >>> geo.clusterBits);
        if (r == 0) {
            throw new CorruptImageException("qcow2 L1 table", img.header.l1TableOffset + l1Index * 8L,
                    String.format("L2 table 0x%x is in use but has refcount 0", off));
        }
        if (r == 1) {
            overlap.refuseTableWrite("L2 table", off, clusterSize);
            t.writable = true;
            if (!L1Entry.isCopied(l1e)) {
                setL1(l1Index, l1e | L1Entry.COPIED);
            }
            return t;
        }
        L2Table nt = newL2(l1Index); // the cache keeps t meanwhile
        System.arraycopy(t.words, 0, nt.words, 0, nt.words.length);
        for (int i = 0; i < geo.l2Entries; i++) {
            nt.words[i * geo.entryWords] &= ~L2Entry.COPIED;
        }
        refcounts.free(off >>> geo.clusterBits, 1, img.l1);
        return nt;
    }

    /**
     * A new, empty L2 table for L1 entry {@code l1Index}: written after its
     * refcount, and before the L1 entry that now points to it.
     */
    private L2Table newL2(int l1Index) throws IOException {
        long n = refcounts.allocate();
        overlap.addL2Table(n);
        L2Table t = img.l2.create(n);
        t.writable = true;
        img.l2.dependOn(refcounts.writes());
        setL1(l1Index, L1Entry.of(n));
        img.l1.dependOn(img.l2);
        return t;
    }

    /**
     * Where new clusters may start: past the metadata the tables point to
     * (a hostile image may leave it without refcounts), snapshot L1 tables
     * of a plausible size included.
     */
    private static long knownMetadataEnd(Qcow2Image img, MetadataOverlap overlap) {
        long end = overlap.activeEnd();
        for (SnapshotTable.Snapshot s : img.snapshots()) {
            long len = Integer.toUnsignedLong(s.l1Size()) * 8;
            if (s.l1TableOffset() >= 0 && len <= Qcow2Header.MAX_L1_BYTES) {
                end = Math.max(end, s.l1TableOffset() + len);
            }
        }
        return end;
    }

    private void setL1(int index, long value) throws IOException {
        img.l1.set(index, value);
    }

    // ---- zero writes ----

    /**
     * v3: zero flags (whole clusters, or subclusters with extended L2); with
     * {@code mayUnmap} the host cluster is freed, and without a backing file
     * the entry becomes unallocated. v2 without a backing file: whole
     * clusters are deallocated. Everything else gets real zeros, except
     * ranges that already read as zeros.
     */
    void writeZeroes(long guestOffset, long length, boolean mayUnmap) throws IOException {
        img.dropDecompressed();
        flushCompressed();
        long pos = guestOffset;
        long end = guestOffset + length;
        long sinceFlushCheck = 0;
        while (pos < end) {
            long cluster = pos & -clusterSize;
            int from = (int) (pos - cluster);
            int to = (int) Math.min(clusterSize, end - cluster);
            zeroInCluster(cluster, from, to, mayUnmap);
            sinceFlushCheck += to - from;
            pos = cluster + to;
            if (sinceFlushCheck >= CHUNK) {
                sinceFlushCheck = 0;
                flushIfCachesFull();
            }
        }
        flushIfCachesFull();
    }

    private void zeroInCluster(long cluster, int from, int to, boolean mayUnmap) throws IOException {
        long guestInCluster = Math.min(clusterSize, img.virtualSize() - cluster);
        boolean whole = from == 0 && to >= guestInCluster;
        boolean unitAligned = geo.extendedL2 && (from & (geo.subclusterSize - 1)) == 0
                && ((to & (geo.subclusterSize - 1)) == 0 || to >= guestInCluster);
        boolean v3 = img.header.version >= 3;
        if (readsZero(cluster + from, cluster + to)) {
            if (!(whole && mayUnmap && hostOf(cluster) != 0)) {
                return;
            }
        }
        if (!(whole || (v3 && unitAligned)) || (!v3 && hasBacking)) {
            writeRealZeros(cluster + from, to - from);
            return;
        }
        L2Table t = writableL2((int) (cluster >>> geo.l1Shift));
        int index = (int) ((cluster >>> geo.clusterBits) & (geo.l2Entries - 1));
        int wi = index * geo.entryWords;
        long entry = t.words[wi];
        long bitmap = geo.extendedL2 ? t.words[wi + 1] : 0;
        validate(t, index, entry, bitmap);
        boolean compressed = L2Entry.isCompressed(entry);
        long host = compressed ? 0 : L2Entry.hostOffset(entry);
        if (!whole) {
            if (compressed) {
                writeRealZeros(cluster + from, to - from); // qemu also falls back to writing zeros
                return;
            }
            long mask = L2Entry.subclusterMask(from >>> geo.subclusterBits, (to - 1) >>> geo.subclusterBits);
            t.words[wi + 1] = (bitmap & ~mask) | (mask << 32);
            img.l2.markDirty(t);
            return;
        }
        boolean unmap = compressed || !v3 || (mayUnmap && host != 0);
        if (unmap) {
            freeEntry(entry, host);
            entry = 0;
            bitmap = 0;
        }
        if (v3 && (hasBacking || !unmap)) {
            if (geo.extendedL2) {
                bitmap = ALL_ZEROES;
            } else {
                entry |= L2Entry.ZERO_FLAG;
            }
        }
        t.words[wi] = entry;
        if (geo.extendedL2) {
            t.words[wi + 1] = bitmap;
        }
        img.l2.markDirty(t);
    }

    /** Releases what an L2 entry held, once the L2 table without it is durable. */
    private void freeEntry(long entry, long host) {
        if (L2Entry.isCompressed(entry)) {
            refcounts.free(L2Entry.compressedFirstCluster(geo, entry), L2Entry.compressedClusters(geo, entry),
                    img.l2);
        } else if (host != 0) {
            refcounts.free(host >>> geo.clusterBits, 1, img.l2);
        }
    }

    /** Host offset of a guest cluster's data (0 when none, compressed, or without an L2 table). */
    private long hostOf(long cluster) throws IOException {
        int l1Index = (int) (cluster >>> geo.l1Shift);
        long off = L1Entry.l2Offset(img.l1.get(l1Index));
        if (off == 0) {
            return 0;
        }
        L2Table t = img.l2Table(l1Index, off);
        long e = t.words[(int) ((cluster >>> geo.clusterBits) & (geo.l2Entries - 1)) * geo.entryWords];
        return L2Entry.isCompressed(e) ? 0 : L2Entry.hostOffset(e);
    }

    /** Whether guest range [start, end) already reads as zeros in this image. */
    private boolean readsZero(long start, long end) throws IOException {
        long p = start;
        while (p < end) {
            Mapping m = img.mapping(p, end - p);
            if (!(m instanceof Mapping.Zero || (m instanceof Mapping.Unallocated && !hasBacking))) {
                return false;
            }
            p += m.length();
        }
        return true;
    }

    private void writeRealZeros(long guestOffset, long length) throws IOException {
        if (zeros == null) {
            zeros = ByteBuffer.allocate((int) Math.min(ZERO_BUFFER, Math.max(clusterSize, 4096)));
        }
        for (long done = 0; done < length; ) {
            int n = (int) Math.min(zeros.capacity(), length - done);
            ByteBuffer z = zeros.clear().limit(n).slice();
            long pos = guestOffset + done;
            while (z.hasRemaining()) {
                long cluster = pos & -clusterSize;
                int from = (int) (pos - cluster);
                int k = (int) Math.min(z.remaining(), clusterSize - from);
                writeCluster(cluster, from, z, z.position(), k);
                z.position(z.position() + k);
                pos += k;
            }
            flushPending();
            done += n;
        }
    }

    // ---- compressed clusters ----

    /**
     * Stores guest cluster {@code cluster} as {@code length} bytes of
     * compressed data (qcow2.rst "Compressed Clusters Descriptor"): the bytes
     * are packed after the previous compressed cluster (qemu's
     * qcow2_alloc_bytes), every host cluster they touch gains a reference,
     * and the L2 entry holds the offset and the count of 512-byte sectors
     * the data reaches into, minus one. Whatever the entry held is released.
     */
    void writeCompressed(long cluster, byte[] data, int length) throws IOException {
        img.dropDecompressed();
        L2Table t = writableL2((int) (cluster >>> geo.l1Shift));
        int index = (int) ((cluster >>> geo.clusterBits) & (geo.l2Entries - 1));
        int wi = index * geo.entryWords;
        long entry = t.words[wi];
        long bitmap = geo.extendedL2 ? t.words[wi + 1] : 0;
        validate(t, index, entry, bitmap);
        long oldHost = L2Entry.isCompressed(entry) ? 0 : L2Entry.hostOffset(entry);
        freeEntry(entry, oldHost);
        long host = refcounts.allocateBytes(length);
        queueCompressed(data, length, host);
        t.words[wi] = L2Entry.compressed(geo, host, length);
        if (geo.extendedL2) {
            t.words[wi + 1] = 0; // compressed clusters have no subcluster bitmap
        }
        mapsNewData(t, true);
        flushIfCachesFull();
    }

    private void queueCompressed(byte[] data, int length, long host) throws IOException {
        if (compressedBuf == null) {
            compressedBuf = ByteBuffer.allocateDirect((int) Math.max(COMPRESSED_BUFFER, clusterSize));
        }
        if (compressedHost >= 0 && (compressedHost + compressedBuf.position() != host
                || compressedBuf.remaining() < length)) {
            flushCompressed();
        }
        if (compressedHost < 0) {
            compressedHost = host;
        }
        compressedBuf.put(data, 0, length);
    }

    /** Writes the packed compressed clusters (before anything reads them, and at every flush). */
    void flushCompressed() throws IOException {
        if (compressedHost >= 0) {
            long host = compressedHost;
            compressedHost = -1;
            writeData(compressedBuf.flip(), host);
            compressedBuf.clear();
        }
    }

    // ---- data I/O ----

    private void queueData(ByteBuffer src, int at, int n, long host) throws IOException {
        if (pendingHost >= 0 && pendingSrc == src && pendingPos + pendingLen == at
                && pendingHost + pendingLen == host) {
            pendingLen += n;
            return;
        }
        flushPending();
        pendingSrc = src;
        pendingPos = at;
        pendingLen = n;
        pendingHost = host;
    }

    private void flushPending() throws IOException {
        flushCompressed();
        if (pendingHost >= 0) {
            long host = pendingHost;
            pendingHost = -1;
            writeData(pendingSrc.slice(pendingPos, pendingLen), host);
            pendingSrc = null;
        }
    }

    private void writeData(ByteBuffer data, long host) throws IOException {
        file.write(data, host);
    }

    private void flushData() throws IOException {
        flushPending();
        file.flush();
    }

    // ---- flush ----

    private void flushIfCachesFull() throws IOException {
        if (img.l2.isMostlyDirty() || refcounts.overCapacity()) {
            flush();
        }
    }

    /**
     * Makes everything durable. The order is the dependencies': each flush
     * below first flushes what it depends on (see the class comment).
     */
    void flush() throws IOException {
        flushPending();
        img.l1.flush();
        img.l2.flush();
        refcounts.writes().flush();
        LongList freed = refcounts.applyFrees();
        file.flush();
        Refcounts.punchFreed(storage, freed, geo.clusterBits);
    }
}
