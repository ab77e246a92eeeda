package io.diskmorph.format.qcow2;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;

/**
 * check's part for the L1 and L2 tables (qemu's check_refcounts_l1,
 * check_refcounts_l2, fix_l2_entry_by_zero and check_oflag_copied): every
 * reference they hold is counted, every entry judged, and the COPIED flags
 * of the active tables compared with the stored refcounts. L1 tables are
 * read a page at a time, L2 tables one at a time into one buffer.
 */
final class MappingTablesCheck {
    private final CheckContext ctx;
    private final RefcountCheck refcounts;
    /** COPIED mismatches found during the walk, printed after the refcount comparison (qemu's order). */
    private final List<String> copiedMessages = new ArrayList<>();
    private final long[] l2Words;
    /** Direct: an L2 table is read without a bounce through a temporary buffer. */
    private final ByteBuffer l2Buffer;
    /** Progress over the L1 entries of every table walked (null: none), and the entries walked before. */
    io.diskmorph.image.TableWalkProgress walk;
    private long walkedEntries;

    MappingTablesCheck(CheckContext ctx, RefcountCheck refcounts) {
        this.ctx = ctx;
        this.refcounts = refcounts;
        this.l2Buffer = ByteBuffer.allocateDirect((int) ctx.clusterSize);
        this.l2Words = new long[(int) (ctx.clusterSize / 8)];
    }

    /** The COPIED mismatches the walk found, in the order found. */
    void reportCopiedMismatches() {
        copiedMessages.forEach(ctx::message);
    }

    /**
     * check_refcounts_l1, read in pages: the table, its L2 tables and their
     * clusters counted; {@code frag}: count allocated and fragmented
     * clusters (the active table); {@code fix}: repair what qemu repairs
     * during the walk; {@code copied}: also judge COPIED flags (active
     * tables, when nothing is repaired).
     */
    void checkL1(long offset, long size, boolean frag, boolean fix, boolean active, boolean copied)
            throws IOException, CheckFailed {
        if (size == 0) {
            return;
        }
        CheckCounts res = ctx.res;
        ctx.inc(offset, size * 8);
        if (!CheckContext.readable(offset, size * 8)) {
            ctx.message("ERROR: I/O error in check_refcounts_l1");
            res.checkErrors++;
            throw new CheckFailed(CheckFailed.EIO);
        }
        for (long first = 0; first < size; first += CheckContext.PAGE_ENTRIES) {
            int n = (int) Math.min(CheckContext.PAGE_ENTRIES, size - first);
            long[] page = ctx.readPage(offset + first * 8, n);
            for (int j = 0; j < n; j++) {
                if (walk != null) {
                    walk.at(walkedEntries + first + j);
                }
                long e = page[j];
                if (e == 0) {
                    continue;
                }
                if (L1Entry.hasReservedBits(e)) {
                    ctx.message("ERROR found L1 entry with reserved bits set: " + Long.toHexString(e));
                    res.corruptions++;
                }
                long l2 = L1Entry.l2Offset(e);
                ctx.inc(l2, ctx.clusterSize);
                if (!ctx.geo.isClusterAligned(l2)) {
                    ctx.message("ERROR l2_offset=" + Long.toHexString(l2) + ": Table is not cluster aligned; L1 "
                            + "entry corrupted");
                    res.corruptions++;
                }
                boolean copiedL2 = false;
                if (copied && l2 != 0) {
                    StoredRefcounts stored = refcounts.stored;
                    long r = stored.get(l2 >>> ctx.clusterBits);
                    if (stored.known) {
                        copiedL2 = true;
                        if ((r == 1) != L1Entry.isCopied(e)) {
                            res.corruptions++;
                            copiedMessages.add("ERROR OFLAG_COPIED L2 cluster: l1_index=" + (first + j)
                                    + " l1_entry=" + Long.toHexString(e) + " refcount=" + Long.toUnsignedString(r));
                        }
                    }
                }
                checkL2(l2, frag, fix, active, copiedL2);
            }
        }
        walkedEntries += size;
    }

    private void readL2(long offset) throws IOException {
        l2Buffer.clear();
        ctx.storage.read(l2Buffer, offset);
        l2Buffer.flip().asLongBuffer().get(l2Words);
    }

    /** check_refcounts_l2 (and, with {@code copied}, the L2 half of check_oflag_copied). */
    private void checkL2(long l2Offset, boolean frag, boolean fix, boolean active, boolean copied)
            throws IOException, CheckFailed {
        readL2(l2Offset);
        long[] w = l2Words;
        Qcow2Geometry geo = ctx.geo;
        CheckCounts res = ctx.res;
        ReferenceTally refs = ctx.refs;
        StoredRefcounts stored = refcounts.stored;
        boolean dataFile = ctx.hasDataFile;
        long clusterSize = ctx.clusterSize;
        int clusterBits = ctx.clusterBits;
        long fileLength = ctx.fileLength;
        boolean ext = geo.extendedL2;
        int ew = geo.entryWords;
        long nextContiguous = 0;
        int words = geo.l2Entries * ew;
        for (int k = 0; k < words; k++) {
            if (w[k] == 0) {
                continue; // most entries of a sparse image: a tight loop over the unallocated ones
            }
            int i = k / ew;
            k = i * ew + ew - 1;
            long e = w[i * ew];
            long bitmap = ext ? w[i * 2 + 1] : 0;
            long off = L2Entry.hostOffset(e);
            if (!ext && !dataFile && (e & (L2Entry.COMPRESSED_FLAG | L2Entry.ZERO_FLAG | L2Entry.STD_RESERVED)) == 0
                    && off != 0 && (off & (clusterSize - 1)) == 0 && off < fileLength) {
                // the common case, a normal cluster inside the file: what follows below, without the checks
                if (frag) {
                    res.allocated++;
                    if (nextContiguous != 0 && off != nextContiguous) {
                        res.fragmented++;
                    }
                    nextContiguous = off + clusterSize;
                }
                if (!refs.increment(off >>> clusterBits)) {
                    ctx.overflow(off);
                }
                if (copied) {
                    long r = stored.get(off >>> clusterBits);
                    if (stored.known && (r == 1) != L2Entry.isCopied(e)) {
                        res.corruptions++;
                        copiedMessages.add("ERROR OFLAG_COPIED data cluster: l2_entry=" + Long.toHexString(e)
                                + " refcount=" + Long.toUnsignedString(r));
                    }
                }
                continue;
            }
            int type = L2Entry.type(e, ext, dataFile);
            if (type != L2Entry.COMPRESSED && (e & L2Entry.STD_RESERVED) != 0) {
                ctx.message("ERROR found l2 entry with reserved bits set: " + Long.toHexString(e));
                res.corruptions++;
            }
            if (type == L2Entry.COMPRESSED) {
                if (L2Entry.isCopied(e)) {
                    ctx.message("ERROR: coffset=0x" + Long.toHexString(L2Entry.compressedOffset(geo, e)) + ": copied "
                            + "flag must never be set for compressed clusters");
                    e &= ~L2Entry.COPIED;
                    res.corruptions++;
                }
                if (dataFile) {
                    ctx.message("ERROR compressed cluster " + i + " with data file, entry=0x" + Long.toHexString(e));
                    res.corruptions++;
                    continue;
                }
                if (bitmap != 0) {
                    ctx.message("ERROR compressed cluster " + i + " with non-zero subcluster allocation bitmap, "
                            + "entry=0x" + Long.toHexString(e));
                    res.corruptions++;
                    continue;
                }
                ctx.inc(L2Entry.compressedOffset(geo, e), L2Entry.compressedLength(geo, e));
                if (frag) {
                    res.allocated++;
                    res.compressed++;
                    // compressed clusters are fragmented by nature (qemu)
                    res.fragmented++;
                }
                continue;
            }
            if (!L2Entry.hasHost(type)) {
                if (type == L2Entry.UNALLOCATED && (bitmap & L2Entry.ALL_ALLOCATED) != 0) {
                    res.corruptions++;
                    ctx.message("ERROR: Unallocated cluster has non-zero subcluster allocation map");
                }
                continue;
            }
            // a normal cluster, or a preallocated zero cluster
            if (((bitmap >>> 32) & bitmap) != 0) {
                res.corruptions++;
                ctx.message("ERROR offset=" + Long.toHexString(off) + ": Allocated cluster has corrupted subcluster "
                        + "allocation bitmap");
            }
            if ((off & (clusterSize - 1)) != 0) {
                res.corruptions++;
                boolean containsData = ext ? (bitmap & L2Entry.ALL_ALLOCATED) != 0 : type == L2Entry.NORMAL;
                if (!containsData) {
                    ctx.message((fix ? "Repairing" : "ERROR") + " offset=" + Long.toHexString(off) + ": "
                            + "Preallocated cluster is not properly aligned; L2 entry corrupted.");
                    if (fix) {
                        fixEntryByZero(l2Offset, i, bitmap, active);
                        continue; // the cluster is not referenced any more
                    }
                } else {
                    ctx.message("ERROR offset=" + Long.toHexString(off) + ": Data cluster is not properly aligned; "
                            + "L2 entry corrupted.");
                }
            }
            if (frag) {
                res.allocated++;
                if (nextContiguous != 0 && off != nextContiguous) {
                    res.fragmented++;
                }
                nextContiguous = off + clusterSize;
            }
            if (!dataFile) {
                ctx.inc(off, clusterSize);
            }
            if (copied) {
                long r = dataFile ? 1 : stored.get(off >>> clusterBits);
                if ((dataFile || stored.known) && (r == 1) != L2Entry.isCopied(e)) {
                    res.corruptions++;
                    copiedMessages.add("ERROR OFLAG_COPIED data cluster: l2_entry=" + Long.toHexString(e)
                            + " refcount=" + Long.toUnsignedString(r));
                }
            }
        }
    }

    /** fix_l2_entry_by_zero: the entry becomes a plain zero cluster (its subclusters read as zeros). */
    private void fixEntryByZero(long l2Offset, int index, long bitmap, boolean active)
            throws IOException, CheckFailed {
        int ew = ctx.geo.entryWords;
        long at = l2Offset + (long) index * 8 * ew;
        ByteBuffer b = ByteBuffer.allocate(8 * ew);
        if (ctx.geo.extendedL2) {
            b.putLong(0, 0).putLong(8, (bitmap | bitmap << 32) & L2Entry.ALL_ZEROES);
        } else {
            b.putLong(0, L2Entry.ZERO_FLAG);
        }
        int own = active ? MetadataOverlap.ACTIVE_L2 : MetadataOverlap.INACTIVE_L2;
        if (ctx.overlap(own, at, 8L * ew, true) != null) {
            ctx.message("ERROR: Overlap check failed");
            ctx.res.checkErrors++;
            throw new CheckFailed(CheckFailed.EIO);
        }
        ctx.writeAndSync(b, at);
        ctx.res.fixedCorruption();
    }

    /**
     * check_oflag_copied. With {@code report} the mismatches are counted and
     * printed, and a write refused by the overlap check fails the check;
     * without, nothing is reported and the result says whether every write
     * would be allowed. Writes happen only with {@code write}.
     */
    boolean checkCopied(boolean report, boolean write) throws IOException, CheckFailed {
        CheckCounts res = ctx.res;
        boolean repair = ctx.fixErrors
                || ctx.fixLeaks && res.checkErrors == 0 && res.corruptions == 0 && res.leaks == 0;
        StoredRefcounts stored = refcounts.stored;
        long l1Offset = ctx.header.l1TableOffset;
        long size = Integer.toUnsignedLong(ctx.header.l1Size);
        for (long first = 0; first < size; first += CheckContext.PAGE_ENTRIES) {
            int n = (int) Math.min(CheckContext.PAGE_ENTRIES, size - first);
            long[] page = ctx.readPage(l1Offset + first * 8, n);
            for (int j = 0; j < n; j++) {
                long e = page[j];
                long l2 = L1Entry.l2Offset(e);
                if (l2 == 0) {
                    continue;
                }
                long r = stored.get(l2 >>> ctx.clusterBits);
                if (!stored.known) {
                    continue;
                }
                if ((r == 1) != L1Entry.isCopied(e)) {
                    if (report) {
                        res.corruptions++;
                        ctx.message((repair ? "Repairing" : "ERROR") + " OFLAG_COPIED L2 cluster: l1_index="
                                + (first + j) + " l1_entry=" + Long.toHexString(e) + " refcount="
                                + Long.toUnsignedString(r));
                    }
                    if (repair) {
                        long at = l1Offset + (first + j) * 8;
                        if (ctx.overlap(MetadataOverlap.ACTIVE_L1, at, 8, report) != null) {
                            if (!report) {
                                return false;
                            }
                            res.checkErrors++;
                            throw new CheckFailed(CheckFailed.EIO);
                        }
                        if (write) {
                            long fixed = r == 1 ? e | L1Entry.COPIED : e & ~L1Entry.COPIED;
                            ctx.writeAndSync(ByteBuffer.allocate(8).putLong(0, fixed), at);
                        }
                        if (report) {
                            res.fixedCorruption();
                        }
                    }
                }
                if (!checkCopiedL2(l2, repair, report, write)) {
                    return false;
                }
            }
        }
        if (ctx.wrote) {
            ctx.storage.sync();
        }
        return true;
    }

    private boolean checkCopiedL2(long l2, boolean repair, boolean report, boolean write)
            throws IOException, CheckFailed {
        readL2(l2);
        long[] w = l2Words;
        StoredRefcounts stored = refcounts.stored;
        int dirty = 0;
        for (int i = 0; i < ctx.geo.l2Entries; i++) {
            int wi = i * ctx.geo.entryWords;
            long e = w[wi];
            if (!L2Entry.hasHost(L2Entry.type(e, ctx.geo.extendedL2, ctx.hasDataFile))) {
                continue; // compressed, unallocated or a plain zero cluster
            }
            long r = ctx.hasDataFile ? 1 : stored.get(L2Entry.hostOffset(e) >>> ctx.clusterBits);
            if (!ctx.hasDataFile && !stored.known) {
                continue;
            }
            if ((r == 1) != L2Entry.isCopied(e)) {
                if (report) {
                    ctx.res.corruptions++;
                    ctx.message((repair ? "Repairing" : "ERROR") + " OFLAG_COPIED data cluster: l2_entry="
                            + Long.toHexString(e) + " refcount=" + Long.toUnsignedString(r));
                }
                if (repair) {
                    w[wi] = r == 1 ? e | L2Entry.COPIED : e & ~L2Entry.COPIED;
                    dirty++;
                }
            }
        }
        if (dirty > 0) {
            if (ctx.overlap(MetadataOverlap.ACTIVE_L2, l2, ctx.clusterSize, report) != null) {
                if (!report) {
                    return false;
                }
                ctx.message("ERROR: Could not write L2 table; metadata overlap check failed: " + CheckFailed.EIO);
                ctx.res.checkErrors++;
                throw new CheckFailed(CheckFailed.EIO);
            }
            if (write) {
                ByteBuffer b = ByteBuffer.allocate((int) ctx.clusterSize);
                b.asLongBuffer().put(w);
                ctx.storage.write(b, l2);
                ctx.wrote = true;
            }
            if (report) {
                ctx.res.corruptions -= dirty;
                ctx.res.corruptionsFixed += dirty;
            }
        }
        return true;
    }
}
