package io.diskmorph.format.qcow2;

import io.diskmorph.image.CorruptImageException;
import io.diskmorph.storage.Storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * qemu's metadata overlap check (qcow2_check_metadata_overlap with its
 * default "cached" template: everything but inactive L2 tables): whether a
 * write would land on the header, the active L1 table, an active L2 table,
 * the refcount table, a refcount block, the snapshot table, a snapshot's L1
 * table or the bitmap directory. The one check behind the writer (which
 * refuses such a write) and check's repairs (which report it as qemu does).
 *
 * <p>Table clusters are kept in a bitmap for the clusters of any plausible
 * file and in a sorted array for the few a hostile table puts far beyond (a
 * bitmap up there would cost its page index alone), so memory follows the
 * number of tables, not the offsets they claim.
 */
final class MetadataOverlap {
    /** Metadata a write may be allowed to overlap (its own kind), as qemu's QCOW2_OL_* bits. */
    static final int ACTIVE_L1 = 1;
    static final int ACTIVE_L2 = 2;
    /** Not in the template: ignoring it changes nothing, it says what the write is. */
    static final int INACTIVE_L2 = 4;
    static final int REFCOUNT_BLOCK = 8;

    private static final String HEADER = "qcow2_header";
    private static final String L2_TABLE = "active L2 table";
    private static final String REFCOUNT_BLOCK_NAME = "refcount block";
    private static final int L1_PAGE_ENTRIES = 1 << 13;

    private final long clusterSize;
    private final int clusterBits;
    private long l1Start;
    private long l1End;
    private long refcountTableStart;
    private long refcountTableEnd;
    private boolean hasRefcountTable;
    /** The other ranges, in the order they are checked, and their names. */
    private final List<long[]> ranges = new ArrayList<>();
    private final List<String> rangeNames = new ArrayList<>();
    private final ClusterSet l2Tables = new ClusterSet();
    private final ClusterSet refcountBlocks = new ClusterSet();
    /** End of the header, the active L1, its L2 tables and the snapshot table, as read from disk. */
    private long activeEnd;

    private MetadataOverlap(long clusterSize) {
        this.clusterSize = clusterSize;
        this.clusterBits = Long.numberOfTrailingZeros(clusterSize);
        this.activeEnd = clusterSize;
    }

    /**
     * The structures as they are on disk: the active L1 table is read in
     * pages for its L2 tables; {@code refcountTable} holds the table's
     * entries as far as they were read (the rest has no blocks).
     */
    static MetadataOverlap of(Storage storage, Qcow2Header header, long refcountTableOffset,
                              long refcountTableBytes, long[] refcountTable, int refcountTableEntries,
                              long snapshotsOffset, long snapshotsSize, List<SnapshotTable.Snapshot> snapshots)
            throws IOException {
        MetadataOverlap o = new MetadataOverlap(header.clusterSize());
        long l1Size = Integer.toUnsignedLong(header.l1Size);
        if (l1Size > 0) {
            o.l1Start = header.l1TableOffset;
            o.l1End = header.l1TableOffset + l1Size * 8;
        }
        o.activeEnd = Math.max(o.activeEnd, Math.max(header.l1TableOffset + l1Size * 8,
                snapshotsOffset + snapshotsSize));
        o.moveRefcountTable(refcountTableOffset, refcountTableBytes);
        o.add("snapshot table", snapshotsOffset, snapshotsSize);
        for (SnapshotTable.Snapshot s : snapshots) {
            o.add("inactive L1 table", s.l1TableOffset(), Integer.toUnsignedLong(s.l1Size()) * 8);
        }
        BitmapDirectory.Extension bitmaps = BitmapDirectory.extension(header);
        ByteBuffer page = ByteBuffer.allocate((int) Math.min(l1Size, L1_PAGE_ENTRIES) * 8);
        for (long first = 0; first < l1Size; first += L1_PAGE_ENTRIES) {
            int n = (int) Math.min(L1_PAGE_ENTRIES, l1Size - first);
            page.clear().limit(n * 8);
            storage.read(page, header.l1TableOffset + first * 8);
            page.flip();
            for (int k = 0; k < n; k++) {
                long l2 = L1Entry.l2Offset(page.getLong(k * 8));
                if (l2 != 0) {
                    o.addL2Table(l2);
                    o.activeEnd = Math.max(o.activeEnd, l2 + o.clusterSize);
                }
            }
        }
        for (int i = 0; i < refcountTableEntries; i++) {
            o.addRefcountBlock(Refcounts.blockOffsetOf(refcountTable[i]));
        }
        if (bitmaps != null) {
            o.add("bitmap directory", bitmaps.directoryOffset(), bitmaps.directorySize());
        }
        return o;
    }

    private void add(String name, long offset, long size) {
        if (size > 0) {
            ranges.add(new long[]{offset, offset + size});
            rangeNames.add(name);
        }
    }

    /** An L2 table the active L1 points to (two clusters when misaligned, as qemu compares bytes). */
    void addL2Table(long offset) {
        if (offset != 0) {
            mark(l2Tables, offset);
        }
    }

    void addRefcountBlock(long offset) {
        if (offset != 0) {
            mark(refcountBlocks, offset);
        }
    }

    /** The refcount table is now at [offset, offset + size). */
    void moveRefcountTable(long offset, long size) {
        refcountTableStart = offset;
        refcountTableEnd = offset + size;
        hasRefcountTable = size > 0;
    }

    private void mark(ClusterSet set, long offset) {
        set.add(offset >>> clusterBits);
        set.add((offset + clusterSize - 1) >>> clusterBits);
    }

    /** End of the header, the active L1 table, its L2 tables and the snapshot table, as read from disk. */
    long activeEnd() {
        return activeEnd;
    }

    /**
     * The name of the metadata (qemu's wording) a write of [offset, offset +
     * size) would overlap, rounded out to whole clusters as qemu does, or
     * null; {@code ignore}: the kinds of metadata the write may overlap.
     */
    String check(int ignore, long offset, long size) {
        if (size == 0) {
            return null;
        }
        if (offset < clusterSize) {
            return HEADER;
        }
        long start = offset & -clusterSize;
        long end = (offset + size + clusterSize - 1) & -clusterSize;
        if ((ignore & ACTIVE_L1) == 0 && hits(l1Start, l1End, start, end)) {
            return "active L1 table";
        }
        if (hasRefcountTable && hits(refcountTableStart, refcountTableEnd, start, end)) {
            return "refcount table";
        }
        for (int i = 0; i < ranges.size(); i++) {
            if (hits(ranges.get(i)[0], ranges.get(i)[1], start, end)) {
                return rangeNames.get(i);
            }
        }
        for (long k = start >>> clusterBits; k < end >>> clusterBits; k++) {
            if ((ignore & ACTIVE_L2) == 0 && l2Tables.contains(k)) {
                return L2_TABLE;
            }
            if ((ignore & REFCOUNT_BLOCK) == 0 && refcountBlocks.contains(k)) {
                return REFCOUNT_BLOCK_NAME;
            }
        }
        return null;
    }

    /** The writer's refusal of an in-place guest write into the data cluster at {@code hostOffset}. */
    void refuseDataWrite(long hostOffset) throws CorruptImageException {
        String hit = check(0, hostOffset, clusterSize);
        if (isTable(hit)) {
            throw new CorruptImageException("qcow2 L2 table", -1, String.format(
                    "data cluster 0x%x overlaps qcow2 metadata; refusing to write", hostOffset));
        }
        refuseFixed(hit, "data cluster", hostOffset);
    }

    /** The writer's refusal of a write into an existing table: an L2 table or a refcount block. */
    void refuseTableWrite(String structure, long offset, long length) throws CorruptImageException {
        int own = structure.equals("L2 table") ? ACTIVE_L2 : REFCOUNT_BLOCK;
        String hit = check(own, offset, length);
        if (isTable(hit)) {
            throw new CorruptImageException("qcow2 " + structure, offset, "overlaps other qcow2 metadata; refusing to "
                    + "write");
        }
        refuseFixed(hit, structure, offset);
    }

    private static boolean isTable(String hit) {
        return L2_TABLE.equals(hit) || REFCOUNT_BLOCK_NAME.equals(hit);
    }

    private static void refuseFixed(String hit, String structure, long offset) throws CorruptImageException {
        if (hit != null) {
            throw new CorruptImageException("qcow2 " + structure, offset, "overlaps the header, an L1 table, the "
                    + "refcount table or the snapshot table; refusing to write");
        }
    }

    private static boolean hits(long from, long to, long start, long end) {
        return Long.compareUnsigned(from, end) < 0 && Long.compareUnsigned(start, to) < 0;
    }

    /**
     * Cluster indexes: a bitmap below {@link #NEAR}, a sorted array above
     * (kept sorted on insertion: the writer adds tables as it allocates them).
     */
    private static final class ClusterSet {
        private static final long NEAR = 1L << 26;
        private final ClusterBitmap near = new ClusterBitmap();
        private long[] far = new long[0];
        private int farCount;

        void add(long cluster) {
            if (Long.compareUnsigned(cluster, NEAR) < 0) {
                near.set(cluster);
                return;
            }
            int at = Arrays.binarySearch(far, 0, farCount, cluster);
            if (at >= 0) {
                return;
            }
            at = -at - 1;
            if (farCount == far.length) {
                far = Arrays.copyOf(far, Math.max(16, farCount * 2));
            }
            System.arraycopy(far, at, far, at + 1, farCount - at);
            far[at] = cluster;
            farCount++;
        }

        boolean contains(long cluster) {
            if (Long.compareUnsigned(cluster, NEAR) < 0) {
                return near.get(cluster);
            }
            return Arrays.binarySearch(far, 0, farCount, cluster) >= 0;
        }
    }
}
