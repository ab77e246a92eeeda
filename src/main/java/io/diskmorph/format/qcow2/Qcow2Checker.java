package io.diskmorph.format.qcow2;

import io.diskmorph.image.CheckReport;
import io.diskmorph.image.PhaseProgress;
import io.diskmorph.image.TableWalkProgress;
import io.diskmorph.image.RepairMode;
import io.diskmorph.storage.Storage;

import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * qemu-img check and repair of a qcow2 image with qemu 7.2's semantics and
 * wording (block/qcow2.c qcow2_co_check_locked, block/qcow2-refcount.c
 * qcow2_check_refcounts, block/qcow2-snapshot.c, block/qcow2-bitmap.c,
 * qemu-img.c img_check). The coordinator of one pass over its parts, in
 * qemu's order:
 * <ol>
 * <li>the snapshot table is read ({@link SnapshotTableCheck});</li>
 * <li>every reference is counted in the {@link ReferenceTally}: the header,
 *     the active and snapshot L1 tables and their L2 tables, whose entries
 *     are judged on the way ({@link MappingTablesCheck}), the snapshot
 *     table, the refcount table and blocks ({@link RefcountCheck}), the LUKS
 *     header and the bitmaps ({@link BitmapDirectoryCheck}); a reference
 *     that reaches a cluster or more past the end of the file is a
 *     corruption;</li>
 * <li>the counts are compared with the refcount blocks: stored below counted
 *     is a corruption, above is a leak; a stored 0, or broken refcount
 *     structures, mean the structure must be rebuilt
 *     ({@link RefcountRebuild});</li>
 * <li>the COPIED flags of active L1 and L2 entries must say "refcount 1".</li>
 * </ol>
 * Repairs follow qemu: leaks lowered ({@code -r leaks}), then with
 * {@code -r all} refcounts raised, refcount structures rebuilt from the
 * counts, misaligned preallocated entries turned into zero clusters,
 * COPIED flags set right, the snapshot table rewritten. Every write keeps
 * the image at least as consistent as before: references only ever drop,
 * refcounts are made durable before COPIED flags that rely on them, a
 * rebuilt structure is complete and synced before the header points to it.
 * When a repair is refused (a rebuild needed with {@code -r leaks}, a write
 * that would land on metadata: {@link MetadataOverlap}) it fails before
 * anything was written.
 *
 * <p>Memory: the tally (a byte per referenced cluster, pages on use), one
 * L1 page, one L2 table and a few refcount blocks at a time.
 */
final class Qcow2Checker {
    private final CheckContext ctx;
    private final SnapshotTableCheck snapshotTable;
    /** The refcount structure and the L1/L2 tables: read once the snapshot table is known. */
    private RefcountCheck refcounts;
    private MappingTablesCheck mappingTables;

    private Qcow2Checker(Storage storage, RepairMode mode, boolean hasDataFile, PhaseProgress progress)
            throws IOException {
        this.ctx = new CheckContext(storage, mode, hasDataFile);
        ctx.progress = progress;
        this.snapshotTable = new SnapshotTableCheck(ctx);
        ctx.overlapsFrom(() -> MetadataOverlap.of(storage, ctx.header, refcounts.tableOffset,
                refcounts.tableEntries * 8, refcounts.table, refcounts.table.length, snapshotTable.offset(),
                snapshotTable.size(), snapshotTable.snapshots()));
    }

    /**
     * qemu-img check [-r leaks|all]: one pass, and after a repair that fixed
     * something a second, read-only pass that describes the image as it is
     * now (qemu-img's "Double checking the fixed image now..."), carrying the
     * fixed counts. Messages are those of both passes. Progress: phases
     * "tables" (guest bytes of the L1 entries walked, active and snapshot
     * tables together), "refcounts" (host bytes whose counts were compared),
     * with a repair "repair" (announced: its writes have no measure of their
     * own), and after a repair that fixed something "tables" and
     * "refcounts" again for the second pass.
     */
    static CheckReport check(Storage storage, RepairMode mode, boolean hasDataFile, PhaseProgress progress)
            throws IOException {
        CheckReport r = firstPass(storage, mode, hasDataFile, progress);
        if (mode == RepairMode.NONE || r.failure != null || r.corruptionsFixed == 0 && r.leaksFixed == 0) {
            return r;
        }
        // the first pass (and its tally) is gone by now: one tally in memory at a time
        Qcow2Checker second = new Qcow2Checker(storage, RepairMode.NONE, hasDataFile, progress);
        CheckReport again = second.run();
        again.corruptionsFixed = r.corruptionsFixed;
        again.leaksFixed = r.leaksFixed;
        again.repaired = r.repaired;
        again.messages.addAll(r.messages);
        again.messages.addAll(second.ctx.finishMessages());
        return again;
    }

    private static CheckReport firstPass(Storage storage, RepairMode mode, boolean hasDataFile,
                                         PhaseProgress progress) throws IOException {
        Qcow2Checker first = new Qcow2Checker(storage, mode, hasDataFile, progress);
        CheckReport r = first.run();
        r.repaired = first.ctx.wrote;
        r.messages.addAll(first.ctx.finishMessages());
        return r;
    }

    /** qcow2_co_check_locked. */
    private CheckReport run() throws IOException {
        CheckReport report = new CheckReport();
        CheckCounts res = ctx.res;
        CheckCounts snap = snapshotTable.counts;
        try {
            try {
                snapshotTable.read();
                checkRefcounts();
                snapshotTable.fix(refcounts);
            } finally {
                report.corruptions = res.corruptions + snap.corruptions;
                report.leaks = res.leaks + snap.leaks;
                report.checkErrors = res.checkErrors + snap.checkErrors;
                report.corruptionsFixed = res.corruptionsFixed + snap.corruptionsFixed;
                report.leaksFixed = res.leaksFixed + snap.leaksFixed;
                report.totalClusters = CheckContext.ceilDiv(ctx.header.size & ~511L, ctx.clusterSize);
                report.allocatedClusters = res.allocated;
                report.fragmentedClusters = res.fragmented;
                report.compressedClusters = res.compressed;
                report.imageEndOffset = ((refcounts == null ? 0 : refcounts.highest) + 1) * ctx.clusterSize;
            }
            if ((ctx.fixLeaks || ctx.fixErrors) && report.checkErrors == 0 && report.corruptions == 0) {
                markClean();
            }
            if (ctx.grown) {
                ctx.storage.sync();
                ctx.wrote = true;
            }
        } catch (IOException e) {
            // a write the file refused (no space, too large) or a read error: qemu counts it and stops
            report.checkErrors++;
            String why = e.getMessage() == null ? CheckFailed.EIO : e.getMessage();
            ctx.message("ERROR " + why);
            report.failure = why;
        } catch (CheckFailed f) {
            report.failure = f.errno;
            ctx.undoGrowth(); // the repair failed before writing anything: the file keeps its length
        }
        return report;
    }

    /** qcow2_check_refcounts: count, compare, repair. */
    private void checkRefcounts() throws IOException, CheckFailed {
        CheckCounts res = ctx.res;
        long nb = CheckContext.ceilDiv(ctx.fileLength, ctx.clusterSize);
        if (nb > CheckContext.MAX_TALLY) {
            res.checkErrors++;
            throw new CheckFailed(CheckFailed.EFBIG);
        }
        ctx.refs.ensureSize(nb);
        refcounts = new RefcountCheck(ctx);
        mappingTables = new MappingTablesCheck(ctx, refcounts);
        // without repairs nothing changes the image, so COPIED flags are judged during the walk
        boolean copiedDuringWalk = !ctx.fixLeaks && !ctx.fixErrors;
        calculate(ctx.fixErrors, copiedDuringWalk);
        CheckCounts pre = res.copy();
        refcounts.compare(false, false, false);
        if (ctx.fixLeaks || ctx.fixErrors) {
            ctx.progress.update("repair", 0, 0);
            ctx.progress = PhaseProgress.NONE;
        }
        if (refcounts.rebuild && ctx.fixErrors) {
            rebuildRefcountStructure();
        } else if (ctx.fixLeaks || ctx.fixErrors) {
            if (refcounts.rebuild) {
                ctx.message("ERROR need to rebuild refcount structures");
                res.checkErrors++;
                throw new CheckFailed(CheckFailed.EIO);
            }
            if (res.leaks > 0 || res.corruptions > 0) {
                res.set(pre);
                // the fixes are judged now and written only once the COPIED repairs are known to be
                // possible: a check that fails leaves the file as it was
                refcounts.compare(ctx.fixLeaks, ctx.fixErrors, false);
                refcounts.stored.predictFixes(ctx.fixLeaks, ctx.fixErrors);
                if (mappingTables.checkCopied(false, false)) {
                    refcounts.writeFixes();
                    mappingTables.checkCopied(true, true);
                } else {
                    mappingTables.checkCopied(true, false);
                }
                return;
            }
        }
        if (copiedDuringWalk) {
            ctx.signalPending();
            mappingTables.reportCopiedMismatches();
        } else {
            mappingTables.checkCopied(true, true);
        }
    }

    /** calculate_refcounts: the tally of every reference, judging tables on the way. */
    private void calculate(boolean fix, boolean copied) throws IOException, CheckFailed {
        Qcow2Header header = ctx.header;
        ctx.inc(0, ctx.clusterSize);
        long l1Entries = Integer.toUnsignedLong(header.l1Size);
        for (SnapshotTable.Snapshot sn : snapshotTable.snapshots()) {
            l1Entries += Integer.toUnsignedLong(sn.l1Size());
        }
        long l2Coverage = ctx.clusterSize * ctx.geo.l2Entries;
        // the last L2 table of each L1 covers past the disk's end: the total is the disk (once per L1 table
        // walked), so a 64 MiB image does not report 512 MiB of tables
        long tables = 1L + snapshotTable.snapshots().size();
        long coverage = Math.multiplyHigh(l1Entries, l2Coverage) != 0 ? Long.MAX_VALUE : l1Entries * l2Coverage;
        long disks = Math.multiplyHigh(tables, header.size) != 0 ? Long.MAX_VALUE : tables * header.size;
        mappingTables.walk = new TableWalkProgress(ctx.progress, "tables", l2Coverage, Math.min(coverage, disks));
        mappingTables.checkL1(header.l1TableOffset, Integer.toUnsignedLong(header.l1Size), true, fix, true, copied);
        var snapshots = snapshotTable.snapshots();
        if (ctx.hasDataFile && !snapshots.isEmpty()) {
            ctx.message("ERROR " + snapshots.size() + " snapshots in image with data file");
            ctx.res.corruptions++;
        }
        for (SnapshotTable.Snapshot sn : snapshots) {
            if (!ctx.geo.isClusterAligned(sn.l1TableOffset())) {
                ctx.message("ERROR snapshot " + sn.id() + " (" + sn.name() + ") l1_offset="
                        + CheckContext.altHex(sn.l1TableOffset())
                        + ": L1 table is not cluster aligned; snapshot table entry corrupted");
                ctx.res.corruptions++;
                continue;
            }
            if (Integer.toUnsignedLong(sn.l1Size()) > Qcow2Header.MAX_L1_BYTES / 8) {
                ctx.message("ERROR snapshot " + sn.id() + " (" + sn.name() + ") l1_size="
                        + CheckContext.altHex(sn.l1Size()) + ": L1 table is too large; snapshot table entry corrupted");
                ctx.res.corruptions++;
                continue;
            }
            mappingTables.checkL1(sn.l1TableOffset(), Integer.toUnsignedLong(sn.l1Size()), false, fix, false, false);
        }
        mappingTables.walk.done();
        ctx.inc(snapshotTable.offset(), snapshotTable.size());
        ctx.inc(refcounts.tableOffset, refcounts.tableEntries * 8);
        byte[] crypto = header.extension(HeaderExtension.FULL_DISK_ENCRYPTION);
        if (crypto != null) {
            ByteBuffer b = ByteBuffer.wrap(crypto);
            ctx.inc(b.getLong(0), b.getLong(8));
        }
        BitmapDirectoryCheck.countReferences(ctx);
        refcounts.checkRefblocks(fix);
    }

    /**
     * The refcount structure rebuilt ({@link RefcountRebuild}), then every
     * reference counted again against it; the old structure is leaked now
     * and freed by the leak repair, and what the rebuild set right is
     * counted as fixed.
     */
    private void rebuildRefcountStructure() throws IOException, CheckFailed {
        CheckCounts res = ctx.res;
        ctx.message("Rebuilding refcount structure");
        CheckCounts old = res.copy();
        RefcountRebuild.Structure built = RefcountRebuild.rebuild(ctx);

        res.corruptions = 0;
        res.leaks = 0;
        ctx.refs.clear();
        refcounts.rebuild = false;
        refcounts.replace(built.tableOffset(), built.table(), built.table().length);
        ctx.metadataMoved();
        calculate(false, false);
        long freshLeaks = 0;
        if (ctx.fixLeaks) {
            // the old structure is leaked now; what cannot be fixed here was leaked by the rebuild
            CheckCounts saved = res.copy();
            res.set(new CheckCounts());
            refcounts.compare(true, false, true);
            if (refcounts.rebuild) {
                ctx.message("ERROR rebuilt refcount structure is still broken");
            }
            freshLeaks = res.leaks;
            res.set(saved);
        }
        if (res.corruptions < old.corruptions) {
            res.corruptionsFixed += old.corruptions - res.corruptions;
        }
        if (res.leaks < old.leaks) {
            res.leaksFixed += old.leaks - res.leaks;
        }
        res.leaks += freshLeaks;
        refcounts.freshLookups();
    }

    /** qcow2_mark_clean and qcow2_mark_consistent: the dirty and corrupt bits cleared once nothing is wrong. */
    private void markClean() throws IOException {
        Qcow2Header header = ctx.header;
        if (header.version < 3) {
            return;
        }
        long bits = header.incompatible & ~(Qcow2Header.INCOMPAT_DIRTY | Qcow2Header.INCOMPAT_CORRUPT);
        if (bits != header.incompatible) {
            ctx.storage.sync();
            ctx.writeAndSync(ByteBuffer.allocate(8).putLong(0, bits), 72);
        }
    }
}
