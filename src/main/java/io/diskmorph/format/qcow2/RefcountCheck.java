package io.diskmorph.format.qcow2;

import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * The refcount structure as stored, judged against the tally of references
 * (qemu's check_refblocks and compare_refcounts, and the repairs that
 * follow them): the refcount table and blocks, and single refcounts looked
 * up for COPIED flags. Blocks are streamed one at a time.
 */
final class RefcountCheck {
    private final CheckContext ctx;
    long tableOffset;
    /** The refcount table's entries as far as they lie in the file (the rest reads as zeros). */
    long[] table;
    /** Entries of the refcount table (qemu's refcount_table_size). */
    long tableEntries;
    /** The structure is broken beyond single refcounts: only a rebuild repairs it. */
    boolean rebuild;
    /** The last cluster with a stored refcount or a reference (qemu's image end offset). */
    long highest;
    StoredRefcounts stored;

    /** The structure the header names. */
    RefcountCheck(CheckContext ctx) throws IOException {
        this.ctx = ctx;
        long offset = ctx.header.refcountTableOffset;
        long entries = Integer.toUnsignedLong(ctx.header.refcountTableClusters) * ctx.clusterSize / 8;
        long inFile = offset < ctx.fileLength ? (ctx.fileLength - offset + 7) / 8 : 0;
        replace(offset, ctx.readLongs(offset, (int) Math.min(entries, inFile)), entries);
    }

    /** The structure is now the one at {@code offset} with these entries (after a rebuild). */
    void replace(long offset, long[] entries, long tableEntries) {
        this.tableOffset = offset;
        this.table = entries;
        this.tableEntries = tableEntries;
        freshLookups();
    }

    /** Single refcounts are read again from the file (it was written). */
    void freshLookups() {
        stored = new StoredRefcounts(ctx, table);
    }

    /** check_refblocks: each refcount block must be valid, inside the image, and referenced once. */
    void checkRefblocks(boolean fix) throws CheckFailed {
        long clusterSize = ctx.clusterSize;
        CheckCounts res = ctx.res;
        ReferenceTally refs = ctx.refs;
        for (int i = 0; i < tableEntries; i++) {
            long e = i < table.length ? table[i] : 0;
            long off = Refcounts.blockOffsetOf(e);
            long clusterIndex = off >>> ctx.clusterBits;
            if ((e & Refcounts.TABLE_RESERVED) != 0) {
                ctx.message("ERROR refcount table entry " + i + " has reserved bits set");
                res.corruptions++;
                rebuild = true;
                continue;
            }
            if ((off & (clusterSize - 1)) != 0) {
                ctx.message("ERROR refcount block " + i + " is not cluster aligned; refcount table entry corrupted");
                res.corruptions++;
                rebuild = true;
                continue;
            }
            if (Long.compareUnsigned(clusterIndex, refs.size()) >= 0) {
                res.corruptions++;
                ctx.message((fix ? "Repairing" : "ERROR") + " refcount block " + i + " is outside image");
                if (fix) {
                    // qemu grows the file to hold the block
                    String error = Long.compareUnsigned(off, Long.MAX_VALUE - clusterSize) > 0 ? CheckFailed.EINVAL
                            : ctx.grow(off + clusterSize);
                    if (error == null && CheckContext.ceilDiv(ctx.fileLength, clusterSize) > CheckContext.MAX_TALLY) {
                        res.checkErrors++; // qemu cannot hold the in-memory table
                        throw new CheckFailed(CheckFailed.ENOMEM);
                    }
                    if (error == null) {
                        refs.ensureSize(CheckContext.ceilDiv(ctx.fileLength, clusterSize));
                        res.fixedCorruption();
                        ctx.inc(off, clusterSize);
                        continue;
                    }
                    rebuild = true;
                    ctx.message("ERROR could not resize image: " + error);
                }
                continue;
            }
            if (off != 0) {
                ctx.inc(off, clusterSize);
                long r = refs.get(clusterIndex);
                if (r != 1) {
                    ctx.message("ERROR refcount block " + i + " refcount=" + Long.toUnsignedString(r));
                    res.corruptions++;
                    rebuild = true;
                }
            }
        }
    }

    /**
     * compare_refcounts: the stored refcount of every cluster against the
     * tally, block by block; fixes (when allowed) are written block by block
     * and made durable at the end, freed clusters are then punched.
     */
    void compare(boolean fixLeaks, boolean fixErrors, boolean write) throws IOException {
        highest = 0;
        Qcow2Geometry geo = ctx.geo;
        ReferenceTally refs = ctx.refs;
        long per = geo.refblockEntries();
        int order = geo.refcountOrder;
        byte[] block = new byte[(int) ctx.clusterSize];
        LongList freed = new LongList();
        boolean dirtyAny = false;
        // a block counts 2 GiB of the file at 64 KiB clusters, 128 KiB at 512 bytes
        var walk = new io.diskmorph.image.TableWalkProgress(ctx.progress, "refcounts", per * ctx.clusterSize,
                refs.size() * ctx.clusterSize);
        for (long bi = 0; bi * per < refs.size(); bi++) {
            walk.at(bi);
            long first = bi * per;
            long end = Math.min(refs.size(), first + per);
            long off = bi < table.length ? Refcounts.blockOffsetOf(table[(int) bi]) : 0;
            if (off != 0 && !geo.isClusterAligned(off)) {
                ctx.signal(String.format("Refblock offset %s unaligned (reftable index: %s)",
                        CheckContext.altHex(off), CheckContext.altHex(bi)));
                unreadable(first, end);
                continue;
            }
            if (off == 0) {
                // no block: every stored refcount is 0
                for (long i = refs.nextUsed(first, end); i < end; i = refs.nextUsed(i + 1, end)) {
                    highest = i;
                    mismatch(i, 0, refs.get(i), false, false);
                }
                continue;
            }
            if (!CheckContext.readable(off, ctx.clusterSize)) {
                // a block qemu cannot read (bit 63, or past its largest offset): every refcount fails
                unreadable(first, end);
                continue;
            }
            ctx.storage.read(ByteBuffer.wrap(block), off);
            boolean dirty = false;
            for (long i = first; i < end; i++) {
                int k = (int) (i - first);
                long r1 = Refcounts.entry(block, k, order);
                long r2 = refs.get(i);
                if (r1 != 0 || r2 != 0) {
                    highest = i;
                }
                if (r1 != r2 && mismatch(i, r1, r2, fixLeaks, fixErrors)) {
                    setStored(block, k, r2, i, freed);
                    dirty = true;
                }
            }
            if (dirty && write) {
                writeBlock(block, off);
                dirtyAny = true;
            }
        }
        walk.done();
        if (dirtyAny) {
            finishFixes(freed);
        }
    }

    private void unreadable(long first, long end) {
        for (long i = first; i < end; i++) {
            ctx.message("Can't get refcount for cluster " + i + ": " + CheckFailed.EIO);
            ctx.res.checkErrors++;
        }
    }

    /**
     * Writes the fixes a {@link #compare} without writes decided: every
     * stored refcount that differs from the tally and may be fixed in this
     * mode takes the tally's value ({@link StoredRefcounts#predicted}).
     */
    void writeFixes() throws IOException {
        Qcow2Geometry geo = ctx.geo;
        long per = geo.refblockEntries();
        byte[] block = new byte[(int) ctx.clusterSize];
        LongList freed = new LongList();
        boolean any = false;
        for (long bi = 0; bi * per < ctx.refs.size() && bi < table.length; bi++) {
            long off = Refcounts.blockOffsetOf(table[(int) bi]);
            if (off == 0 || !geo.isClusterAligned(off) || !CheckContext.readable(off, ctx.clusterSize)) {
                continue;
            }
            long first = bi * per;
            long end = Math.min(ctx.refs.size(), first + per);
            ctx.storage.read(ByteBuffer.wrap(block), off);
            boolean dirty = false;
            for (long i = first; i < end; i++) {
                int k = (int) (i - first);
                long r1 = Refcounts.entry(block, k, geo.refcountOrder);
                long r2 = stored.predicted(r1, i);
                if (r2 != r1) {
                    setStored(block, k, r2, i, freed);
                    dirty = true;
                }
            }
            if (dirty) {
                writeBlock(block, off);
                any = true;
            }
        }
        if (any) {
            finishFixes(freed);
        }
    }

    /** Sets refcount {@code k} of a block being fixed; a cluster that drops to 0 is freed. */
    private void setStored(byte[] block, int k, long refcount, long clusterIndex, LongList freed) {
        Refcounts.setEntry(block, k, ctx.geo.refcountOrder, refcount);
        if (refcount == 0) {
            freed.add(clusterIndex);
        }
    }

    private void writeBlock(byte[] block, long offset) throws IOException {
        ctx.storage.write(ByteBuffer.wrap(block), offset);
        ctx.wrote = true;
    }

    /** The fixed blocks durable, then the clusters they freed deallocated (qemu discards them). */
    private void finishFixes(LongList freed) throws IOException {
        ctx.storage.sync();
        Refcounts.punchFreed(ctx.storage, freed, ctx.clusterBits);
    }

    /** Reports one refcount mismatch; true when it is to be fixed (counted as fixed). */
    private boolean mismatch(long clusterIndex, long r1, long r2, boolean fixLeaks, boolean fixErrors) {
        boolean leak = Long.compareUnsigned(r1, r2) > 0;
        boolean fix = false;
        if (r1 == 0) {
            rebuild = true;
        } else if (leak && fixLeaks || !leak && fixErrors) {
            fix = true;
        }
        ctx.message((fix ? "Repairing" : leak ? "Leaked" : "ERROR") + " cluster " + clusterIndex + " refcount="
                + Long.toUnsignedString(r1) + " reference=" + Long.toUnsignedString(r2));
        CheckCounts res = ctx.res;
        if (fix) {
            if (leak) {
                res.leaksFixed++;
            } else {
                res.corruptionsFixed++;
            }
        } else if (leak) {
            res.leaks++;
        } else {
            res.corruptions++;
        }
        return fix;
    }

    /** Where qcow2_alloc_clusters would put {@code count} clusters: the first run with stored refcount 0. */
    long firstFreeRun(long count) throws IOException {
        StoredRefcounts now = new StoredRefcounts(ctx, table);
        long run = 0;
        long clusterIndex = 0;
        for (; run < count; clusterIndex++) {
            long r = now.get(clusterIndex);
            run = r == 0 && now.known ? run + 1 : 0;
        }
        return (clusterIndex - count) << ctx.clusterBits;
    }
}
