package io.diskmorph.format.qcow2;

import io.diskmorph.image.cache.MetadataCache;
import io.diskmorph.image.cache.SyncTracker;

import java.io.IOException;

/**
 * The refcounts stored in an image under check, one cluster at a time
 * (qemu's qcow2_get_refcount), through a small cache of refcount blocks. A
 * lookup qemu cannot answer leaves {@link #known} false: a block it cannot
 * read, or a misaligned one, which qemu also signals as a corruption.
 */
final class StoredRefcounts {
    private static final int CACHED_BLOCKS = 8;

    private final CheckContext ctx;
    private final long[] reftable;
    private final MetadataCache<RefcountBlock> blocks;
    /** Refcount table index and bytes of the block the last lookup used: runs of lookups in one block. */
    private long lastIndex = -1;
    private byte[] lastBlock;
    /** False when the last lookup failed (qemu's -EIO). */
    boolean known;
    private boolean predictLeaks;
    private boolean predictErrors;

    /** {@code reftable}: the refcount table's entries as far as they lie in the file. */
    StoredRefcounts(CheckContext ctx, long[] reftable) {
        this.ctx = ctx;
        this.reftable = reftable;
        this.blocks = new MetadataCache<>("qcow2 refcount block", new SyncTracker(ctx.storage),
                (int) ctx.clusterSize, CACHED_BLOCKS, () -> new RefcountBlock(ctx.clusterSize));
    }

    /**
     * Answer as if the leak (corruption) fixes a comparison just decided
     * were written: a stored refcount that is not 0 and differs from the
     * tally reads as the tally's count.
     */
    void predictFixes(boolean leaks, boolean errors) {
        predictLeaks = leaks;
        predictErrors = errors;
    }

    long predicted(long stored, long clusterIndex) {
        ReferenceTally refs = ctx.refs;
        if (stored == 0 || clusterIndex >= refs.size() || !predictLeaks && !predictErrors) {
            return stored;
        }
        long counted = refs.get(clusterIndex);
        if (counted == stored) {
            return stored;
        }
        boolean leak = Long.compareUnsigned(stored, counted) > 0;
        return leak && predictLeaks || !leak && predictErrors ? counted : stored;
    }

    long get(long clusterIndex) throws IOException {
        known = true;
        Qcow2Geometry geo = ctx.geo;
        long bi = clusterIndex >>> geo.refblockBits;
        int i = (int) (clusterIndex & (geo.refblockEntries() - 1));
        if (bi == lastIndex) {
            return predicted(Refcounts.entry(lastBlock, i, geo.refcountOrder), clusterIndex);
        }
        if (bi >= reftable.length) {
            return 0;
        }
        long off = Refcounts.blockOffsetOf(reftable[(int) bi]);
        if (off == 0) {
            return 0;
        }
        boolean aligned = geo.isClusterAligned(off);
        if (aligned && !CheckContext.readable(off, ctx.clusterSize)) {
            known = false; // a read error, not a corruption qemu signals
            return 0;
        }
        if (!aligned) {
            known = false;
            ctx.signalLater(String.format("Refblock offset %s unaligned (reftable index: %s)",
                    CheckContext.altHex(off), CheckContext.altHex(bi)));
            return 0;
        }
        lastBlock = blocks.get(off).bytes;
        lastIndex = bi;
        return predicted(Refcounts.entry(lastBlock, i, geo.refcountOrder), clusterIndex);
    }
}
