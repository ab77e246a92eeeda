package io.diskmorph.format.qcow2;

import io.diskmorph.image.CommitRecord;
import io.diskmorph.image.HostSpace;
import io.diskmorph.image.ImageException;
import io.diskmorph.image.InvalidRequestException;
import io.diskmorph.image.LayoutBuilder;
import io.diskmorph.image.UnsupportedFeatureException;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Builds qcow2 metadata over guest clusters that already sit in the file
 * (see {@link LayoutBuilder}). Layout, in allocation order: the L1 table
 * (sized by the virtual disk) when the builder is made, each L2 table when
 * the guest moves past its range (written at once, so memory holds one L2
 * table), then at {@link #finish} the refcount table and blocks, sized by a
 * fixed point so they cover every used cluster including themselves. Host
 * state is one bit per cluster ({@link ClusterBitmap}); every data cluster
 * gets refcount 1 and COPIED.
 */
final class Qcow2LayoutBuilder implements LayoutBuilder {
    /** L1 entries buffered before they are written (the L1 is streamed out in guest order). */
    private static final int L1_CHUNK = 4096;

    private final Qcow2CreateOptions opts;
    private final Qcow2Geometry geo;
    private final HostSpace space;
    private final long virtualSize;
    private final long clusterSize;
    private final int l1Entries;
    private final long l1Offset;
    private final long l1Bytes;
    private final List<HeaderExtension> extensions;
    private final ClusterBitmap used = new ClusterBitmap();

    private final long[] l1Chunk = new long[L1_CHUNK];
    private long l1ChunkBase;
    private final long[] l2;
    private long l2Index = -1;
    private long lastGuest = -1;
    private boolean finished;
    private long requiredLength = -1;

    Qcow2LayoutBuilder(Qcow2CreateOptions opts, long virtualSize, HostSpace space) throws IOException {
        this.opts = opts;
        this.geo = new Qcow2Geometry(opts.clusterBits(), opts.extendedL2(), opts.refcountOrder());
        this.space = space;
        this.virtualSize = virtualSize;
        this.clusterSize = geo.clusterSize;
        if (virtualSize < 0 || virtualSize % 512 != 0) {
            throw new InvalidRequestException("qcow2 image size must be a multiple of 512 bytes, not " + virtualSize);
        }
        long entries = geo.l1EntriesFor(virtualSize);
        if (entries * 8 > Qcow2Header.MAX_L1_BYTES) {
            throw new InvalidRequestException("qcow2 virtual size " + virtualSize + " is too large for cluster_size="
                    + clusterSize + " (the L1 table would exceed 32 MiB)");
        }
        this.l1Entries = (int) entries;
        this.extensions = headerExtensions();
        this.l2 = new long[(int) (clusterSize / 8)];
        used.set(0);
        // an empty disk has no L1 table at all (qemu-img check would count an allocated one as a leak)
        this.l1Bytes = (entries * 8 + clusterSize - 1) & -clusterSize;
        this.l1Offset = entries == 0 ? 0 : allocate(l1Bytes);
    }

    /**
     * Backing format and (v3) qemu's feature name table when everything fits
     * in cluster 0 with the backing name; fails before anything is written otherwise.
     */
    private List<HeaderExtension> headerExtensions() throws InvalidRequestException {
        List<HeaderExtension> exts = new ArrayList<>();
        if (opts.backingFormat() != null) {
            exts.add(new HeaderExtension(HeaderExtension.BACKING_FORMAT,
                    opts.backingFormat().getBytes(java.nio.charset.StandardCharsets.UTF_8)));
        }
        if (opts.version() >= 3) {
            List<HeaderExtension> withTable = new ArrayList<>(exts);
            withTable.add(Qcow2Header.featureNameTable());
            if (fits(withTable)) {
                return withTable;
            }
        }
        if (!fits(exts)) {
            throw new InvalidRequestException("qcow2 option backing_file: the header and the backing file name do "
                    + "not fit in one cluster of " + clusterSize + " bytes");
        }
        return exts;
    }

    private boolean fits(List<HeaderExtension> exts) {
        try {
            header(0, 0).withExtensions(exts).encodeZone();
            return true;
        } catch (UnsupportedFeatureException e) {
            return false;
        }
    }

    private Qcow2Header header(long refcountTableOffset, int refcountTableClusters) {
        long incompatible = (opts.extendedL2() ? Qcow2Header.INCOMPAT_EXTENDED_L2 : 0)
                | (opts.compressionType() != Qcow2Header.COMPRESSION_ZLIB ? Qcow2Header.INCOMPAT_COMPRESSION : 0);
        long compatible = opts.lazyRefcounts() ? Qcow2Header.COMPAT_LAZY_REFCOUNTS : 0;
        return Qcow2Header.create(opts.version(), opts.clusterBits(), virtualSize, l1Entries, l1Offset,
                refcountTableOffset, refcountTableClusters, incompatible, compatible, opts.refcountOrder(),
                opts.compressionType(), extensions == null ? List.of() : extensions, opts.backingFile());
    }

    @Override
    public long clusterSize() {
        return clusterSize;
    }

    @Override
    public long headerZone() {
        return clusterSize;
    }

    @Override
    public boolean canKeepDataAt(long hostOffset) {
        long maxCluster = (Qcow2Header.MAX_REFTABLE_BYTES / 8) << geo.refblockBits;
        return hostOffset >= clusterSize && (hostOffset & (clusterSize - 1)) == 0
                && hostOffset <= Qcow2Geometry.MAX_HOST_OFFSET - clusterSize
                && (hostOffset >>> geo.clusterBits) < maxCluster;
    }

    @Override
    public boolean supportsZeroClusters() {
        return opts.version() >= 3;
    }

    @Override
    public void addData(long guestOffset, long hostOffset) throws IOException {
        int index = slot(guestOffset);
        if (!canKeepDataAt(hostOffset)) {
            throw new InvalidRequestException(String.format("qcow2 cannot keep a data cluster at host offset 0x%x "
                    + "(cluster size %d)", hostOffset, clusterSize));
        }
        long ci = hostOffset >>> geo.clusterBits;
        if (used.get(ci)) {
            throw new ImageException(String.format("host cluster 0x%x is announced twice or overlaps the layout's "
                    + "own metadata", hostOffset));
        }
        used.set(ci);
        l2[index * geo.entryWords] = L2Entry.normal(hostOffset);
        if (geo.extendedL2) {
            l2[index * 2 + 1] = L2Entry.ALL_ALLOCATED;
        }
    }

    @Override
    public void addZero(long guestOffset) throws IOException {
        if (opts.version() < 3) {
            if (opts.backingFile() != null) {
                throw new UnsupportedFeatureException("qcow2 compat=0.10 has no zero clusters: a cluster that must "
                        + "read as zeros over the backing file cannot be expressed");
            }
            checkGuest(guestOffset); // unallocated reads as zeros without a backing file
            return;
        }
        int index = slot(guestOffset);
        if (geo.extendedL2) {
            l2[index * 2 + 1] = L2Entry.ALL_ZEROES;
        } else {
            l2[index] = L2Entry.ZERO_FLAG;
        }
    }

    /** Validates the guest offset and returns its index in the current L2 table (starting a new one if needed). */
    private int slot(long guestOffset) throws IOException {
        checkGuest(guestOffset);
        long table = guestOffset >>> geo.l1Shift;
        if (table != l2Index) {
            finishL2();
            l2Index = table;
        }
        return (int) ((guestOffset >>> geo.clusterBits) & (geo.l2Entries - 1));
    }

    private void checkGuest(long guestOffset) throws InvalidRequestException {
        if (finished) {
            throw new IllegalStateException("layout already finished");
        }
        if (guestOffset < 0 || guestOffset >= virtualSize || (guestOffset & (clusterSize - 1)) != 0) {
            throw new InvalidRequestException(String.format("guest offset 0x%x is not a cluster of the %d-byte "
                    + "disk (cluster size %d)", guestOffset, virtualSize, clusterSize));
        }
        if (guestOffset <= lastGuest) {
            throw new InvalidRequestException(String.format("guest offset 0x%x announced out of order (after 0x%x)",
                    guestOffset, lastGuest));
        }
        lastGuest = guestOffset;
    }

    /** Allocates and writes the current L2 table, and records it in the L1. */
    private void finishL2() throws IOException {
        if (l2Index < 0) {
            return;
        }
        long off = allocate(clusterSize);
        ByteBuffer b = ByteBuffer.allocate((int) clusterSize);
        b.asLongBuffer().put(l2);
        space.write(off, b);
        setL1(l2Index, L1Entry.of(off));
        Arrays.fill(l2, 0);
        l2Index = -1;
    }

    private void setL1(long index, long value) throws IOException {
        while (index >= l1ChunkBase + L1_CHUNK) {
            writeL1Chunk();
        }
        l1Chunk[(int) (index - l1ChunkBase)] = value;
    }

    /** Writes the buffered L1 entries (zeros where no L2 table was made) and moves on. */
    private void writeL1Chunk() throws IOException {
        long from = l1ChunkBase * 8;
        int bytes = (int) Math.min((long) L1_CHUNK * 8, l1Bytes - from);
        if (bytes > 0) {
            ByteBuffer b = ByteBuffer.allocate(bytes);
            b.asLongBuffer().put(l1Chunk, 0, bytes / 8);
            space.write(l1Offset + from, b);
        }
        Arrays.fill(l1Chunk, 0);
        l1ChunkBase += L1_CHUNK;
    }

    /** Host space for metadata, marked used; refuses space that is already in use. */
    private long allocate(long bytes) throws IOException {
        long off = space.allocate(bytes, clusterSize);
        if (off < clusterSize || (off & (clusterSize - 1)) != 0 || off > Qcow2Geometry.MAX_HOST_OFFSET - bytes) {
            throw new ImageException(String.format("host space handed out unusable offset 0x%x for qcow2 metadata",
                    off));
        }
        for (long c = off >>> geo.clusterBits; c < (off + bytes) >>> geo.clusterBits; c++) {
            if (used.get(c)) {
                throw new ImageException(String.format("host space handed out cluster 0x%x, which is in use",
                        c << geo.clusterBits));
            }
            used.set(c);
        }
        return off;
    }

    @Override
    public CommitRecord finish() throws IOException {
        if (finished) {
            throw new IllegalStateException("layout already finished");
        }
        finishL2();
        finished = true;
        while (l1ChunkBase * 8 < l1Bytes) {
            writeL1Chunk();
        }

        // Refcount structures: a table estimated to cover everything including itself and its blocks,
        // then blocks for every range of used clusters until no allocation lands in an uncovered range.
        int blockBits = geo.refblockBits;
        long maxTableClusters = Qcow2Header.MAX_REFTABLE_BYTES / clusterSize;
        long tableClusters = estimateTableClusters();
        long tableOffset = allocateTable(tableClusters, maxTableClusters);
        long[] blocks = new long[0];
        while (true) {
            boolean changed;
            do {
                changed = false;
                long hi = used.highest() >>> blockBits;
                if (hi >= blocks.length) {
                    blocks = Arrays.copyOf(blocks, (int) Math.min(Integer.MAX_VALUE - 8, Math.max(hi + 1,
                            blocks.length * 2L)));
                }
                for (long b = 0; b <= hi; b++) {
                    if (blocks[(int) b] == 0 && used.nextSetBit(b << blockBits, (b + 1) << blockBits) >= 0) {
                        blocks[(int) b] = allocate(clusterSize);
                        changed = true;
                    }
                }
            } while (changed);
            long needed = (used.highest() >>> blockBits) + 1;
            if (needed <= (tableClusters * clusterSize) / 8) {
                break;
            }
            // the table does not reach the last block: give its space up and take a larger one
            for (long c = 0; c < tableClusters; c++) {
                used.clear((tableOffset >>> geo.clusterBits) + c);
            }
            tableClusters = (needed * 8 + clusterSize - 1) / clusterSize + 1;
            tableOffset = allocateTable(tableClusters, maxTableClusters);
        }

        long entriesPerBlock = geo.refblockEntries();
        for (int b = 0; b < blocks.length; b++) {
            if (blocks[b] == 0) {
                continue;
            }
            // a new array per block: zeroed natively, where Arrays.fill ran interpreted (0.5 ms per create)
            byte[] block = new byte[(int) clusterSize];
            long first = (long) b * entriesPerBlock;
            for (long c = used.nextSetBit(first, first + entriesPerBlock); c >= 0;
                 c = used.nextSetBit(c + 1, first + entriesPerBlock)) {
                Refcounts.setEntry(block, (int) (c - first), geo.refcountOrder, 1);
            }
            space.write(blocks[b], ByteBuffer.wrap(block));
        }
        ByteBuffer table = ByteBuffer.allocate((int) (tableClusters * clusterSize));
        for (int b = 0; b < Math.min(blocks.length, table.capacity() / 8); b++) {
            table.putLong(b * 8, blocks[b]);
        }
        space.write(tableOffset, table);

        requiredLength = (used.highest() + 1) << geo.clusterBits;
        return CommitRecord.headerSector(header(tableOffset, (int) tableClusters).encodeZone(), space);
    }

    /**
     * Refcount table size assuming its clusters and the blocks are appended
     * after the highest used cluster; the caller enlarges it if the host
     * space placed them further out.
     */
    private long estimateTableClusters() {
        int blockBits = geo.refblockBits;
        long hi = used.highest();
        long blocks = 0;
        for (long b = 0; b <= hi >>> blockBits; b++) {
            if (used.nextSetBit(b << blockBits, (b + 1) << blockBits) >= 0) {
                blocks++;
            }
        }
        long tableClusters = 1;
        while (true) {
            long last = hi + tableClusters + blocks + 2 + ((tableClusters + blocks) >>> blockBits);
            long needed = (last >>> blockBits) + 1;
            if (needed * 8 <= tableClusters * clusterSize) {
                return tableClusters;
            }
            tableClusters++;
        }
    }

    private long allocateTable(long clusters, long max) throws IOException {
        if (clusters > max) {
            throw new UnsupportedFeatureException("qcow2 refcount table would exceed qemu's limit of 8 MiB (use a "
                    + "larger cluster_size or smaller refcount_bits)");
        }
        return allocate(clusters * clusterSize);
    }

    @Override
    public long requiredFileLength() {
        if (!finished) {
            throw new IllegalStateException("layout not finished");
        }
        return requiredLength;
    }
}
