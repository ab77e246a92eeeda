package io.diskmorph.format.qcow2;

import io.diskmorph.image.CorruptImageException;
import io.diskmorph.image.cache.SyncTracker;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.List;

/**
 * check's part for the snapshot table (qemu's qcow2_check_read_snapshot_table
 * and qcow2_check_fix_snapshot_table, block/qcow2-snapshot.c): the table is
 * read with check's rules (with {@code -r all}: overhanging entries dropped,
 * oversized extra data cut), incomplete version 3 entries reported, and
 * after the refcount check the repaired table written anew. Its counters
 * are qemu's snapshot_res, added to the pass's at the end.
 */
final class SnapshotTableCheck {
    private final CheckContext ctx;
    final CheckCounts counts = new CheckCounts();
    private List<SnapshotTable.Snapshot> snapshots = List.of();
    private long offset;
    private long size;

    SnapshotTableCheck(CheckContext ctx) {
        this.ctx = ctx;
    }

    List<SnapshotTable.Snapshot> snapshots() {
        return snapshots;
    }

    long offset() {
        return offset;
    }

    /** Bytes of the table as read. */
    long size() {
        return size;
    }

    /** qcow2_check_read_snapshot_table. */
    void read() throws IOException, CheckFailed {
        Qcow2Header header = ctx.header;
        long count = Integer.toUnsignedLong(header.nbSnapshots);
        long at = header.snapshotsOffset;
        long reduced = 0;
        if (count > Qcow2Header.MAX_SNAPSHOTS && ctx.fixErrors) {
            ctx.message("Discarding " + (count - Qcow2Header.MAX_SNAPSHOTS) + " overhanging snapshots");
            reduced = count - Qcow2Header.MAX_SNAPSHOTS;
            count = Qcow2Header.MAX_SNAPSHOTS;
        }
        if (count > Qcow2Header.MAX_SNAPSHOTS) {
            counts.checkErrors++;
            ctx.message("ERROR snapshot table too large");
            ctx.message("You can force-remove all " + (count - Qcow2Header.MAX_SNAPSHOTS) + " overhanging "
                    + "snapshots with qemu-img check -r all");
            throw new CheckFailed(CheckFailed.EFBIG);
        }
        if (at < 0 || Long.MAX_VALUE - count * Qcow2Header.SNAPSHOT_HEADER_SIZE < at
                || !ctx.geo.isClusterAligned(at)) {
            counts.checkErrors++;
            ctx.message("ERROR snapshot table offset invalid");
            throw new CheckFailed(CheckFailed.EINVAL);
        }
        SnapshotTable.Checked t = SnapshotTable.readChecked(ctx.storage, header, at, count, ctx.fixErrors);
        t.messages().forEach(ctx::message);
        if (t.error() != null) {
            counts.checkErrors++;
            ctx.message("ERROR failed to read the snapshot table: " + t.error());
            ctx.message(t.hint());
            throw new CheckFailed(CheckFailed.EFBIG);
        }
        snapshots = t.table().snapshots();
        offset = at;
        size = t.table().byteSize();
        reduced += t.discarded();
        counts.corruptions += reduced + t.extraDropped();
        if (reduced > 0) {
            // the count first: the refcount check relies on it, and dropped entries only leak
            ctx.writeAndSync(ByteBuffer.allocate(4).putInt(0, snapshots.size()), 60);
            counts.corruptionsFixed += reduced;
            counts.corruptions -= reduced;
        }
        if (header.version >= 3) {
            for (int i = 0; i < snapshots.size(); i++) {
                if (snapshots.get(i).extraDataSize() < SnapshotTable.V3_MIN_EXTRA_DATA) {
                    counts.corruptions++;
                    ctx.message((ctx.fixErrors ? "Repairing" : "ERROR") + " snapshot table entry " + i
                            + " is incomplete");
                }
            }
        }
    }

    /**
     * qcow2_check_fix_snapshot_table, with qcow2_write_snapshots: the table
     * rewritten in new clusters (allocated with their refcounts made durable
     * first), the header switched, the old table's clusters freed.
     */
    void fix(RefcountCheck refcounts) throws IOException, CheckFailed {
        if (counts.corruptions == 0 || !ctx.fixErrors) {
            return;
        }
        byte[] table = SnapshotTable.encode(ctx.storage, snapshots);
        long clusters = CheckContext.ceilDiv(table.length, ctx.clusterSize);
        // qemu puts the new table in the first free clusters and refuses when that lands on metadata
        // (the old table); we allocate at the end of the image, but refuse where qemu does
        if (table.length > 0 && ctx.overlap(0, refcounts.firstFreeRun(clusters), table.length, true) != null) {
            ctx.message("ERROR failed to update snapshot table: " + CheckFailed.EIO);
            counts.checkErrors++;
            throw new CheckFailed(CheckFailed.EIO);
        }
        Qcow2Header h = Qcow2Header.read(ctx.storage, true);
        SyncTracker file = new SyncTracker(ctx.storage);
        Refcounts rc = Refcounts.load(file, ctx.geo, h.refcountTableOffset, h.refcountTableClusters,
                Qcow2Image.REFCOUNT_CACHE_BYTES,
                (tableOffset, tableClusters) -> file.write(
                        ByteBuffer.wrap(h.withRefcountTable(tableOffset, tableClusters).encodeFields()), 0));
        long at = table.length == 0 ? 0 : rc.allocateRun(clusters);
        rc.writes().flush(); // the new clusters' refcounts are durable before anything points to them
        if (table.length > 0) {
            ctx.storage.write(ByteBuffer.wrap(table), at);
            ctx.storage.sync();
        }
        ByteBuffer pointer = ByteBuffer.allocate(12).putInt(0, snapshots.size()).putLong(4, at);
        ctx.writeAndSync(pointer, 60);
        if (size > 0) {
            long first = offset >>> ctx.clusterBits;
            long last = (offset + size - 1) >>> ctx.clusterBits;
            rc.free(first, last - first + 1, file); // the header no longer points there
            try {
                rc.applyFrees();
            } catch (CorruptImageException e) {
                // qemu ignores a failed free of the old table: it only leaks
            }
        }
        counts.corruptionsFixed += counts.corruptions;
        counts.corruptions = 0;
    }
}
