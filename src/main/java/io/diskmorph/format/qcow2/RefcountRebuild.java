package io.diskmorph.format.qcow2;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.Arrays;

/**
 * qemu's rebuild_refcount_structure (check -r all when the refcount
 * structure is broken): new refcount blocks and table made from the tally,
 * in clusters nothing references (qemu's allocation: refblocks from their
 * own range on, the table from the start of the image, repeated while the
 * table grows). Everything is placed and checked against the old metadata
 * first; then blocks and table are written and synced, and only then does
 * the header point to them. The old structure is leaked from then on, for
 * the leak repair that follows.
 */
final class RefcountRebuild {
    /** The structure written: where its table lies, and its entries. */
    record Structure(long tableOffset, long[] table) {
    }

    private final CheckContext ctx;
    private final ReferenceTally refs;
    /** Clusters [knownUsedFrom, knownUsedTo) all have a reference (see {@link #allocate}). */
    private long knownUsedFrom;
    private long knownUsedTo;
    /** The new refcount table being planned. */
    private long[] table = new long[0];
    private int entries;
    private String failure;

    private RefcountRebuild(CheckContext ctx) {
        this.ctx = ctx;
        this.refs = ctx.refs;
    }

    /**
     * Places, checks and writes a new structure and switches the header to
     * it; the clusters it takes are counted in the tally.
     */
    static Structure rebuild(CheckContext ctx) throws IOException, CheckFailed {
        return new RefcountRebuild(ctx).placeAndWrite();
    }

    private Structure placeAndWrite() throws IOException, CheckFailed {
        long clusterSize = ctx.clusterSize;
        int clusterBits = ctx.clusterBits;
        placeRefblocks(0, refs.size());
        long tableOffset;
        long tableClusters;
        boolean grown;
        do {
            tableClusters = CheckContext.ceilDiv(entries * 8L, clusterSize);
            long[] firstFree = {0};
            tableOffset = allocate(tableClusters, firstFree);
            grown = placeRefblocks(tableOffset >>> clusterBits, (tableOffset >>> clusterBits) + tableClusters);
        } while (grown);
        if (failure != null) {
            ctx.message(failure);
            ctx.res.checkErrors++;
            throw new CheckFailed(CheckFailed.ENOMEM);
        }
        for (int bi = 0; bi < entries; bi++) {
            long off = table[bi];
            if (off != 0 && ctx.overlap(0, off, clusterSize, true) != null) {
                ctx.message("ERROR writing refblock: " + CheckFailed.EIO);
                ctx.res.checkErrors++;
                throw new CheckFailed(CheckFailed.EIO);
            }
        }
        if (ctx.overlap(0, tableOffset, entries * 8L, true) != null) {
            ctx.message("ERROR writing reftable: " + CheckFailed.EIO);
            throw new CheckFailed(CheckFailed.EIO);
        }
        Qcow2Geometry geo = ctx.geo;
        long per = geo.refblockEntries();
        byte[] block = new byte[(int) clusterSize];
        for (int bi = 0; bi < entries; bi++) {
            long off = table[bi];
            if (off == 0) {
                continue;
            }
            Arrays.fill(block, (byte) 0);
            long first = (long) bi * per;
            long stop = Math.min(refs.size(), first + per);
            for (long i = refs.nextUsed(first, stop); i < stop; i = refs.nextUsed(i + 1, stop)) {
                Refcounts.setEntry(block, (int) (i - first), geo.refcountOrder, refs.get(i));
            }
            ctx.storage.write(ByteBuffer.wrap(block), off);
        }
        ByteBuffer tableBytes = ByteBuffer.allocate(entries * 8);
        tableBytes.asLongBuffer().put(table, 0, entries);
        ctx.storage.write(tableBytes, tableOffset);
        ctx.storage.sync();
        ctx.writeAndSync(ByteBuffer.allocate(12).putLong(0, tableOffset).putInt(8, (int) tableClusters), 48);
        ctx.fileLength = Math.max(ctx.fileLength, ctx.storage.size());
        return new Structure(tableOffset, Arrays.copyOf(table, entries));
    }

    /**
     * rebuild_refcounts_write_refblocks without the writes: places a
     * refcount block for every used cluster in [first, end); true when the
     * table grew.
     */
    private boolean placeRefblocks(long first, long end) {
        Qcow2Geometry geo = ctx.geo;
        long per = geo.refblockEntries();
        long[] firstFree = {0};
        boolean grown = false;
        long stop = end;
        for (long clusterIndex = refs.nextUsed(first, stop); clusterIndex < stop;
             clusterIndex = refs.nextUsed(clusterIndex + 1, stop)) {
            long bi = clusterIndex >>> geo.refblockBits;
            long start = bi << geo.refblockBits;
            if (bi >= entries || table[(int) bi] == 0) {
                firstFree[0] = Math.max(firstFree[0], start);
                long off = allocate(1, firstFree);
                if ((off >>> ctx.clusterBits) >= stop) {
                    stop = (off >>> ctx.clusterBits) + 1;
                }
                if (bi >= entries) {
                    long n = CheckContext.ceilDiv((bi + 1) * 8, ctx.clusterSize) * ctx.clusterSize / 8;
                    if (n * 8 > Qcow2Header.MAX_REFTABLE_BYTES) {
                        failure = "ERROR allocating reftable memory";
                        return false;
                    }
                    table = Arrays.copyOf(table, (int) n);
                    entries = (int) n;
                    grown = true;
                }
                table[(int) bi] = off;
            }
            clusterIndex = start + per - 1;
        }
        return grown;
    }

    /**
     * alloc_clusters_imrt: the first run of {@code count} clusters with no
     * reference from firstFree[0] on (which moves to the first free cluster
     * seen). qemu rescans used clusters on every call, quadratic on a full
     * image; we remember one range known to be fully used and skip it, which
     * finds the same clusters.
     */
    private long allocate(long count, long[] firstFree) {
        long start = firstFree[0];
        long clusterIndex = start >= knownUsedFrom && start < knownUsedTo ? knownUsedTo : start;
        boolean firstGap = true;
        long contiguous = 0;
        long size = refs.size();
        for (; clusterIndex < size && contiguous < count; clusterIndex++) {
            if (refs.get(clusterIndex) == 0) {
                contiguous++;
                if (firstGap) {
                    firstFree[0] = clusterIndex;
                    firstGap = false;
                }
            } else {
                contiguous = 0;
            }
        }
        if (contiguous < count) {
            refs.ensureSize(clusterIndex + count - contiguous);
        }
        clusterIndex -= contiguous;
        for (long i = 0; i < count; i++) {
            refs.set(clusterIndex + i, 1);
        }
        if (firstGap) {
            // nothing free from start to the old end, and the new clusters are used now
            if (start >= knownUsedFrom && start <= knownUsedTo) {
                knownUsedTo = Math.max(knownUsedTo, clusterIndex + count);
            } else {
                knownUsedFrom = start;
                knownUsedTo = clusterIndex + count;
            }
        }
        return clusterIndex << ctx.clusterBits;
    }
}
