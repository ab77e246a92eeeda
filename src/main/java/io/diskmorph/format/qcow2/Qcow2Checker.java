package io.diskmorph.format.qcow2;

import io.diskmorph.image.CheckReport;
import io.diskmorph.image.RepairMode;
import io.diskmorph.image.cache.SyncTracker;
import io.diskmorph.storage.Storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;


/**
 * qemu-img check and repair of a qcow2 image with qemu 7.2's semantics and
 * wording (block/qcow2.c qcow2_co_check_locked, block/qcow2-refcount.c
 * qcow2_check_refcounts, block/qcow2-snapshot.c, block/qcow2-bitmap.c,
 * qemu-img.c img_check). One instance is one pass:
 * <ol>
 * <li>the snapshot table is read (with {@code -r all}: overhanging entries
 *     dropped, oversized extra data cut, incomplete entries rewritten);</li>
 * <li>every reference is counted in a {@link ReferenceTally}: the header,
 *     the active and snapshot L1 tables and their L2 tables (entries are
 *     judged on the way), the snapshot table, the refcount table and blocks,
 *     the LUKS header and the bitmaps; a reference that reaches a cluster or
 *     more past the end of the file is a corruption;</li>
 * <li>the counts are compared with the refcount blocks: stored below counted
 *     is a corruption, above is a leak; a stored 0, or broken refcount
 *     structures, mean the structure must be rebuilt;</li>
 * <li>the COPIED flags of active L1 and L2 entries must say "refcount 1".</li>
 * </ol>
 * Repairs follow qemu: leaks lowered ({@code -r leaks}), then with
 * {@code -r all} refcounts raised, refcount structures rebuilt from the
 * counts (new blocks and table in clusters nothing references, the header
 * switched last, the old structure then freed as a leak), misaligned
 * preallocated entries turned into zero clusters, COPIED flags set right,
 * the snapshot table rewritten. Every write keeps the image at least as
 * consistent as before: references only ever drop, refcounts are made
 * durable before COPIED flags that rely on them, a rebuilt structure is
 * complete and synced before the header points to it. When a repair is
 * refused (a rebuild needed with {@code -r leaks}, a write that would land
 * on metadata) it fails before anything was written.
 *
 * <p>Memory: the tally (a byte per referenced cluster, pages on use), one
 * L1 page, one L2 table and a few refcount blocks at a time.
 */
final class Qcow2Checker {
    /** Bitmap table entries (qcow2-bitmap.c BME_TABLE_ENTRY_*). */
    private static final long BME_RESERVED = 0xff00_0000_0000_01feL;
    private static final long BME_ALL_ONES = 1;
    private static final int BME_MAX_TABLE_SIZE = 0x800_0000;
    private static final long BME_MAX_PHYS_SIZE = 0x2000_0000L;
    private static final int BME_MAX_NAME_SIZE = 1023;
    private static final int L1_PAGE_ENTRIES = 1 << 13;
    /** Per-problem lines kept; the rest are counted. */
    private static final int MAX_MESSAGES = 10_000;
    /** An in-memory refcount table beyond this many clusters is qemu's ENOMEM. */
    private static final long MAX_TALLY = Integer.MAX_VALUE;

    private static final String EIO = "Input/output error";
    private static final String EFBIG = "File too large";
    private static final String EINVAL = "Invalid argument";
    private static final String ENOMEM = "Cannot allocate memory";

    /** The check cannot continue (qemu returns -errno): reported as "Check failed: strerror". */
    private static final class Failed extends Exception {
        final String errno;

        Failed(String errno) {
            super(errno, null, false, false);
            this.errno = errno;
        }
    }

    /** qemu's BdrvCheckResult counters. */
    private static final class Counts {
        long corruptions;
        long leaks;
        long checkErrors;
        long corruptionsFixed;
        long leaksFixed;
        long allocated;
        long fragmented;
        long compressed;

        Counts copy() {
            Counts c = new Counts();
            c.set(this);
            return c;
        }

        void set(Counts o) {
            corruptions = o.corruptions;
            leaks = o.leaks;
            checkErrors = o.checkErrors;
            corruptionsFixed = o.corruptionsFixed;
            leaksFixed = o.leaksFixed;
            allocated = o.allocated;
            fragmented = o.fragmented;
            compressed = o.compressed;
        }
    }

    private final Storage storage;
    private final boolean fixLeaks;
    private final boolean fixErrors;
    private final boolean dataFile;
    private final Qcow2Header header;
    private final Qcow2Geometry geo;
    private final long c;
    private final int cb;
    private final ReferenceTally refs;
    private final Counts res = new Counts();
    private final List<String> messages;
    private final List<String> copiedMessages = new ArrayList<>();
    private long messagesDropped;

    /** The file length the check works with: grows when a refcount block outside the image is repaired. */
    private long fileLength;
    private final long originalLength;
    /** The file was grown (and nothing else written, unless {@link #wrote}). */
    private boolean grown;
    private long reftableOffset;
    /** The refcount table's entries as far as they lie in the file (the rest reads as zeros). */
    private long[] reftable;
    /** Entries of the refcount table (qemu's refcount_table_size). */
    private long reftableEntries;
    private List<SnapshotTable.Snapshot> snapshots = List.of();
    private long snapshotsOffset;
    private long snapshotsSize;
    private boolean rebuild;
    /** Clusters [knownUsedFrom, knownUsedTo) all have a reference (see {@link #allocate}). */
    private long knownUsedFrom;
    private long knownUsedTo;
    private long highest;
    private boolean wrote;
    private boolean signaled;
    private boolean signalPending;
    private String pendingSignal;
    private MetadataOverlap overlaps;
    private DiskRefcounts disk;
    private final long[] l2Words;
    private final ByteBuffer l2Buffer;
    private ByteBuffer pageBuffer;
    private long[] pageWords;

    private Qcow2Checker(Storage storage, RepairMode mode, boolean dataFile, List<String> messages)
            throws IOException {
        this.storage = storage;
        this.fixLeaks = mode.leaks();
        this.fixErrors = mode.all();
        this.dataFile = dataFile;
        this.messages = messages;
        this.header = Qcow2Header.read(storage, true);
        this.geo = Qcow2Geometry.of(header);
        this.c = geo.clusterSize;
        this.cb = geo.clusterBits;
        this.refs = new ReferenceTally(geo.refcountBits);
        this.fileLength = storage.size();
        this.originalLength = fileLength;
        this.l2Buffer = ByteBuffer.allocateDirect((int) c); // read without a bounce through a temporary buffer
        this.l2Words = new long[(int) (c / 8)];
    }

    /**
     * qemu-img check [-r leaks|all]: one pass, and after a repair that fixed
     * something a second, read-only pass that describes the image as it is
     * now (qemu-img's "Double checking the fixed image now..."), carrying the
     * fixed counts. Messages are those of both passes.
     */
    static CheckReport check(Storage storage, RepairMode mode, boolean dataFile) throws IOException {
        List<String> messages = new ArrayList<>();
        CheckReport r = firstPass(storage, mode, dataFile, messages);
        if (mode == RepairMode.NONE || r.failure != null || r.corruptionsFixed == 0 && r.leaksFixed == 0) {
            return r;
        }
        // the first pass (and its tally) is gone by now: one tally in memory at a time
        Qcow2Checker second = new Qcow2Checker(storage, RepairMode.NONE, dataFile, messages);
        CheckReport again = second.run();
        again.corruptionsFixed = r.corruptionsFixed;
        again.leaksFixed = r.leaksFixed;
        again.repaired = r.repaired;
        again.messages.addAll(r.messages);
        again.messages.addAll(second.finishMessages());
        return again;
    }

    private static CheckReport firstPass(Storage storage, RepairMode mode, boolean dataFile, List<String> messages)
            throws IOException {
        Qcow2Checker first = new Qcow2Checker(storage, mode, dataFile, messages);
        CheckReport r = first.run();
        r.repaired = first.wrote;
        r.messages.addAll(first.finishMessages());
        return r;
    }

    private List<String> finishMessages() {
        if (messagesDropped > 0) {
            messages.add("... " + messagesDropped + " more problem lines not shown");
            messagesDropped = 0;
        }
        List<String> copy = List.copyOf(messages);
        messages.clear();
        return copy;
    }

    /** qcow2_co_check_locked. */
    private CheckReport run() throws IOException {
        CheckReport report = new CheckReport();
        Counts snap = new Counts();
        try {
            try {
                readSnapshotTable(snap);
                checkRefcounts();
                fixSnapshotTable(snap);
            } finally {
                report.corruptions = res.corruptions + snap.corruptions;
                report.leaks = res.leaks + snap.leaks;
                report.checkErrors = res.checkErrors + snap.checkErrors;
                report.corruptionsFixed = res.corruptionsFixed + snap.corruptionsFixed;
                report.leaksFixed = res.leaksFixed + snap.leaksFixed;
                report.totalClusters = ceilDiv(header.size & ~511L, c);
                report.allocatedClusters = res.allocated;
                report.fragmentedClusters = res.fragmented;
                report.compressedClusters = res.compressed;
                report.imageEndOffset = (highest + 1) * c;
            }
            if ((fixLeaks || fixErrors) && report.checkErrors == 0 && report.corruptions == 0) {
                markClean();
            }
            if (grown) {
                storage.sync();
                wrote = true;
            }
        } catch (IOException e) {
            // a write the file refused (no space, too large) or a read error: qemu counts it and stops
            report.checkErrors++;
            String why = e.getMessage() == null ? EIO : e.getMessage();
            message("ERROR " + why);
            report.failure = why;
        } catch (Failed f) {
            report.failure = f.errno;
            if (grown && !wrote) {
                // the repair failed before writing anything: the file keeps its length
                storage.truncate(originalLength);
            }
        }
        return report;
    }

    // ---- snapshot table (qcow2_check_read_snapshot_table, qcow2_check_fix_snapshot_table) ----

    private void readSnapshotTable(Counts snap) throws IOException, Failed {
        long count = Integer.toUnsignedLong(header.nbSnapshots);
        long offset = header.snapshotsOffset;
        long reduced = 0;
        if (count > Qcow2Header.MAX_SNAPSHOTS && fixErrors) {
            message("Discarding " + (count - Qcow2Header.MAX_SNAPSHOTS) + " overhanging snapshots");
            reduced = count - Qcow2Header.MAX_SNAPSHOTS;
            count = Qcow2Header.MAX_SNAPSHOTS;
        }
        if (count > Qcow2Header.MAX_SNAPSHOTS) {
            snap.checkErrors++;
            message("ERROR snapshot table too large");
            message("You can force-remove all " + (count - Qcow2Header.MAX_SNAPSHOTS) + " overhanging snapshots "
                    + "with qemu-img check -r all");
            throw new Failed(EFBIG);
        }
        if (offset < 0 || Long.MAX_VALUE - count * Qcow2Header.SNAPSHOT_HEADER_SIZE < offset
                || (offset & (c - 1)) != 0) {
            snap.checkErrors++;
            message("ERROR snapshot table offset invalid");
            throw new Failed(EINVAL);
        }
        SnapshotTable.Checked t = SnapshotTable.readChecked(storage, header, offset, count, fixErrors);
        t.messages().forEach(this::message);
        if (t.error() != null) {
            snap.checkErrors++;
            message("ERROR failed to read the snapshot table: " + t.error());
            message(t.hint());
            throw new Failed(EFBIG);
        }
        snapshots = t.table().snapshots();
        snapshotsOffset = offset;
        snapshotsSize = t.table().byteSize();
        reduced += t.discarded();
        snap.corruptions += reduced + t.extraDropped();
        if (reduced > 0) {
            // the count first: the refcount check relies on it, and dropped entries only leak
            writeAndSync(ByteBuffer.allocate(4).putInt(0, snapshots.size()), 60);
            snap.corruptionsFixed += reduced;
            snap.corruptions -= reduced;
        }
        if (header.version >= 3) {
            for (int i = 0; i < snapshots.size(); i++) {
                if (snapshots.get(i).extraDataSize() < SnapshotTable.V3_MIN_EXTRA_DATA) {
                    snap.corruptions++;
                    message((fixErrors ? "Repairing" : "ERROR") + " snapshot table entry " + i + " is incomplete");
                }
            }
        }
    }

    /**
     * qcow2_write_snapshots after a repair: the table rewritten in new
     * clusters (allocated with their refcounts made durable first), the
     * header switched, the old table's clusters freed.
     */
    private void fixSnapshotTable(Counts snap) throws IOException, Failed {
        if (snap.corruptions == 0 || !fixErrors) {
            return;
        }
        byte[] table = SnapshotTable.encode(storage, snapshots);
        long clusters = ceilDiv(table.length, c);
        // qemu puts the new table in the first free clusters and refuses when that lands on metadata
        // (the old table); we allocate at the end of the image, but refuse where qemu does
        if (table.length > 0 && overlap(0, firstFreeRun(clusters), table.length, true) != null) {
            message("ERROR failed to update snapshot table: " + EIO);
            snap.checkErrors++;
            throw new Failed(EIO);
        }
        Qcow2Header h = Qcow2Header.read(storage, true);
        SyncTracker file = new SyncTracker(storage);
        Refcounts rc = Refcounts.load(file, geo, h.refcountTableOffset, h.refcountTableClusters,
                Qcow2Image.REFCOUNT_CACHE_BYTES, (offset, n) -> file.write(ByteBuffer.wrap(h.withRefcountTable(offset, n).encodeFields()), 0));
        long at = table.length == 0 ? 0 : rc.allocateRun(clusters);
        rc.writes().flush(); // the new clusters' refcounts are durable before anything points to them
        if (table.length > 0) {
            storage.write(ByteBuffer.wrap(table), at);
            storage.sync();
        }
        ByteBuffer pointer = ByteBuffer.allocate(12).putInt(0, snapshots.size()).putLong(4, at);
        writeAndSync(pointer, 60);
        if (snapshotsSize > 0) {
            long first = snapshotsOffset >>> cb;
            long last = (snapshotsOffset + snapshotsSize - 1) >>> cb;
            rc.free(first, last - first + 1, file); // the header no longer points there
            try {
                rc.applyFrees();
            } catch (io.diskmorph.image.CorruptImageException e) {
                // qemu ignores a failed free of the old table: it only leaks
            }
        }
        snap.corruptionsFixed += snap.corruptions;
        snap.corruptions = 0;
    }

    /** Where qcow2_alloc_clusters would put {@code count} clusters: the first run with stored refcount 0. */
    private long firstFreeRun(long count) throws IOException {
        DiskRefcounts now = new DiskRefcounts();
        long run = 0;
        long cluster = 0;
        for (; run < count; cluster++) {
            long r = now.get(cluster);
            run = r == 0 && now.known ? run + 1 : 0;
        }
        return (cluster - count) << cb;
    }

    // ---- refcounts (qcow2_check_refcounts) ----

    private void checkRefcounts() throws IOException, Failed {
        long nb = ceilDiv(fileLength, c);
        if (nb > MAX_TALLY) {
            res.checkErrors++;
            throw new Failed(EFBIG);
        }
        refs.ensureSize(nb);
        reftableOffset = header.refcountTableOffset;
        reftableEntries = Integer.toUnsignedLong(header.refcountTableClusters) * c / 8;
        long inFile = reftableOffset < fileLength ? (fileLength - reftableOffset + 7) / 8 : 0;
        reftable = readLongs(reftableOffset, (int) Math.min(reftableEntries, inFile));
        disk = new DiskRefcounts();
        // without repairs nothing changes the image, so COPIED flags are judged during the walk
        boolean copiedDuringWalk = !fixLeaks && !fixErrors;
        calculate(fixErrors, copiedDuringWalk);
        Counts pre = res.copy();
        compare(false, false, false);
        if (rebuild && fixErrors) {
            rebuildRefcountStructure();
        } else if (fixLeaks || fixErrors) {
            if (rebuild) {
                message("ERROR need to rebuild refcount structures");
                res.checkErrors++;
                throw new Failed(EIO);
            }
            if (res.leaks > 0 || res.corruptions > 0) {
                res.set(pre);
                // the fixes are judged now and written only once the COPIED repairs are known to be
                // possible: a check that fails leaves the file as it was
                compare(fixLeaks, fixErrors, false);
                disk.predictLeaks = fixLeaks;
                disk.predictErrors = fixErrors;
                if (checkCopied(false, false)) {
                    writeRefcountFixes();
                    checkCopied(true, true);
                } else {
                    checkCopied(true, false);
                }
                return;
            }
        }
        if (copiedDuringWalk) {
            if (signalPending) {
                signal(pendingSignal);
            }
            copiedMessages.forEach(this::message);
        } else {
            checkCopied(true, true);
        }
    }

    /** calculate_refcounts: the tally of every reference, judging tables on the way. */
    private void calculate(boolean fix, boolean copied) throws IOException, Failed {
        inc(0, c);
        checkL1(header.l1TableOffset, Integer.toUnsignedLong(header.l1Size), true, fix, true, copied);
        if (dataFile && !snapshots.isEmpty()) {
            message("ERROR " + snapshots.size() + " snapshots in image with data file");
            res.corruptions++;
        }
        for (SnapshotTable.Snapshot sn : snapshots) {
            if ((sn.l1TableOffset() & (c - 1)) != 0) {
                message("ERROR snapshot " + sn.id() + " (" + sn.name() + ") l1_offset=" + altHex(sn.l1TableOffset())
                        + ": L1 table is not cluster aligned; snapshot table entry corrupted");
                res.corruptions++;
                continue;
            }
            if (Integer.toUnsignedLong(sn.l1Size()) > Qcow2Header.MAX_L1_BYTES / 8) {
                message("ERROR snapshot " + sn.id() + " (" + sn.name() + ") l1_size=" + altHex(sn.l1Size())
                        + ": L1 table is too large; snapshot table entry corrupted");
                res.corruptions++;
                continue;
            }
            checkL1(sn.l1TableOffset(), Integer.toUnsignedLong(sn.l1Size()), false, fix, false, false);
        }
        inc(snapshotsOffset, snapshotsSize);
        inc(reftableOffset, reftableEntries * 8);
        byte[] crypto = header.extension(HeaderExtension.FULL_DISK_ENCRYPTION);
        if (crypto != null) {
            ByteBuffer b = ByteBuffer.wrap(crypto);
            inc(b.getLong(0), b.getLong(8));
        }
        checkBitmaps();
        checkRefblocks(fix);
    }

    /** qcow2_inc_refcounts_imrt: one more reference to each cluster of [offset, offset + size). */
    private void inc(long offset, long size) throws Failed {
        if (size <= 0) {
            return;
        }
        // a last cluster may be partly past the end of the file, a whole cluster may not (qemu's int64 test)
        if (offset + size - fileLength >= c) {
            message("ERROR: counting reference for region exceeding the end of the file by one cluster or more: "
                    + "offset 0x" + Long.toHexString(offset) + " size 0x" + Long.toHexString(size));
            res.corruptions++;
            return;
        }
        long start = offset & -c;
        long last = (offset + size - 1) & -c;
        for (long at = start; Long.compareUnsigned(at, last) <= 0; at += c) {
            long k = at >>> cb;
            if (k >= refs.size()) {
                if (k >= MAX_TALLY) {
                    res.checkErrors++;
                    throw new Failed(ENOMEM);
                }
                refs.ensureSize(k + 1);
            }
            if (!refs.increment(k)) {
                overflow(at);
            }
            if (at == last) {
                break;
            }
        }
    }

    private void overflow(long at) {
        message("ERROR: overflow cluster offset=0x" + Long.toHexString(at));
        message("Use qemu-img amend to increase the refcount entry width or qemu-img convert to create a "
                + "clean copy if the image cannot be opened for writing");
        res.corruptions++;
    }

    /** check_refcounts_l1, read in pages; {@code copied}: also check_oflag_copied of the active tables. */
    private void checkL1(long offset, long size, boolean frag, boolean fix, boolean active, boolean copied)
            throws IOException, Failed {
        if (size == 0) {
            return;
        }
        inc(offset, size * 8);
        if (!readable(offset, size * 8)) {
            message("ERROR: I/O error in check_refcounts_l1");
            res.checkErrors++;
            throw new Failed(EIO);
        }
        for (long first = 0; first < size; first += L1_PAGE_ENTRIES) {
            int n = (int) Math.min(L1_PAGE_ENTRIES, size - first);
            long[] page = readPage(offset + first * 8, n);
            for (int j = 0; j < n; j++) {
                long e = page[j];
                if (e == 0) {
                    continue;
                }
                if (L1Entry.hasReservedBits(e)) {
                    message("ERROR found L1 entry with reserved bits set: " + Long.toHexString(e));
                    res.corruptions++;
                }
                long l2 = L1Entry.l2Offset(e);
                inc(l2, c);
                if ((l2 & (c - 1)) != 0) {
                    message("ERROR l2_offset=" + Long.toHexString(l2) + ": Table is not cluster aligned; L1 entry "
                            + "corrupted");
                    res.corruptions++;
                }
                boolean copiedL2 = false;
                if (copied && l2 != 0) {
                    long r = disk.get(l2 >>> cb);
                    if (disk.known) {
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
    }

    private void readL2(long offset) throws IOException {
        l2Buffer.clear();
        storage.read(l2Buffer, offset);
        l2Buffer.flip().asLongBuffer().get(l2Words);
    }

    /** check_refcounts_l2 (and, with {@code copied}, the L2 half of check_oflag_copied). */
    private void checkL2(long l2Offset, boolean frag, boolean fix, boolean active, boolean copied)
            throws IOException, Failed {
        readL2(l2Offset);
        long[] w = l2Words;
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
                    && off != 0 && (off & (c - 1)) == 0 && off < fileLength) {
                // the common case, a normal cluster inside the file: what follows below, without the checks
                if (frag) {
                    res.allocated++;
                    if (nextContiguous != 0 && off != nextContiguous) {
                        res.fragmented++;
                    }
                    nextContiguous = off + c;
                }
                if (!refs.increment(off >>> cb)) {
                    overflow(off);
                }
                if (copied) {
                    long r = disk.get(off >>> cb);
                    if (disk.known && (r == 1) != L2Entry.isCopied(e)) {
                        res.corruptions++;
                        copiedMessages.add("ERROR OFLAG_COPIED data cluster: l2_entry=" + Long.toHexString(e)
                                + " refcount=" + Long.toUnsignedString(r));
                    }
                }
                continue;
            }
            int type = L2Entry.type(e, ext, dataFile);
            if (type != L2Entry.COMPRESSED && (e & L2Entry.STD_RESERVED) != 0) {
                message("ERROR found l2 entry with reserved bits set: " + Long.toHexString(e));
                res.corruptions++;
            }
            if (type == L2Entry.COMPRESSED) {
                if (L2Entry.isCopied(e)) {
                    message("ERROR: coffset=0x" + Long.toHexString(L2Entry.compressedOffset(geo, e)) + ": copied "
                            + "flag must never be set for compressed clusters");
                    e &= ~L2Entry.COPIED;
                    res.corruptions++;
                }
                if (dataFile) {
                    message("ERROR compressed cluster " + i + " with data file, entry=0x" + Long.toHexString(e));
                    res.corruptions++;
                    continue;
                }
                if (bitmap != 0) {
                    message("ERROR compressed cluster " + i + " with non-zero subcluster allocation bitmap, entry=0x"
                            + Long.toHexString(e));
                    res.corruptions++;
                    continue;
                }
                inc(L2Entry.compressedOffset(geo, e), L2Entry.compressedLength(geo, e));
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
                    message("ERROR: Unallocated cluster has non-zero subcluster allocation map");
                }
                continue;
            }
            // a normal cluster, or a preallocated zero cluster
            if (((bitmap >>> 32) & bitmap) != 0) {
                res.corruptions++;
                message("ERROR offset=" + Long.toHexString(off) + ": Allocated cluster has corrupted subcluster "
                        + "allocation bitmap");
            }
            if ((off & (c - 1)) != 0) {
                res.corruptions++;
                boolean containsData = ext ? (bitmap & L2Entry.ALL_ALLOCATED) != 0 : type == L2Entry.NORMAL;
                if (!containsData) {
                    message((fix ? "Repairing" : "ERROR") + " offset=" + Long.toHexString(off) + ": Preallocated "
                            + "cluster is not properly aligned; L2 entry corrupted.");
                    if (fix) {
                        fixEntryByZero(l2Offset, i, bitmap, active);
                        continue; // the cluster is not referenced any more
                    }
                } else {
                    message("ERROR offset=" + Long.toHexString(off) + ": Data cluster is not properly aligned; L2 "
                            + "entry corrupted.");
                }
            }
            if (frag) {
                res.allocated++;
                if (nextContiguous != 0 && off != nextContiguous) {
                    res.fragmented++;
                }
                nextContiguous = off + c;
            }
            if (!dataFile) {
                inc(off, c);
            }
            if (copied) {
                long r = dataFile ? 1 : disk.get(off >>> cb);
                if ((dataFile || disk.known) && (r == 1) != L2Entry.isCopied(e)) {
                    res.corruptions++;
                    copiedMessages.add("ERROR OFLAG_COPIED data cluster: l2_entry=" + Long.toHexString(e)
                            + " refcount=" + Long.toUnsignedString(r));
                }
            }
        }
    }

    /** fix_l2_entry_by_zero: the entry becomes a plain zero cluster (its subclusters read as zeros). */
    private void fixEntryByZero(long l2Offset, int index, long bitmap, boolean active)
            throws IOException, Failed {
        int ew = geo.entryWords;
        long at = l2Offset + (long) index * 8 * ew;
        ByteBuffer b = ByteBuffer.allocate(8 * ew);
        if (geo.extendedL2) {
            b.putLong(0, 0).putLong(8, (bitmap | bitmap << 32) & L2Entry.ALL_ZEROES);
        } else {
            b.putLong(0, L2Entry.ZERO_FLAG);
        }
        int own = active ? MetadataOverlap.ACTIVE_L2 : MetadataOverlap.INACTIVE_L2;
        if (overlap(own, at, 8L * ew, true) != null) {
            message("ERROR: Overlap check failed");
            res.checkErrors++;
            throw new Failed(EIO);
        }
        writeAndSync(b, at);
        res.corruptions--;
        res.corruptionsFixed++;
    }

    /** check_refblocks: each refcount block must be valid, inside the image, and referenced once. */
    private void checkRefblocks(boolean fix) throws Failed {
        for (int i = 0; i < reftableEntries; i++) {
            long e = i < reftable.length ? reftable[i] : 0;
            long off = Refcounts.blockOffsetOf(e);
            long cluster = off >>> cb;
            if ((e & Refcounts.TABLE_RESERVED) != 0) {
                message("ERROR refcount table entry " + i + " has reserved bits set");
                res.corruptions++;
                rebuild = true;
                continue;
            }
            if ((off & (c - 1)) != 0) {
                message("ERROR refcount block " + i + " is not cluster aligned; refcount table entry corrupted");
                res.corruptions++;
                rebuild = true;
                continue;
            }
            if (Long.compareUnsigned(cluster, refs.size()) >= 0) {
                res.corruptions++;
                message((fix ? "Repairing" : "ERROR") + " refcount block " + i + " is outside image");
                if (fix) {
                    // qemu grows the file to hold the block
                    String error = null;
                    if (Long.compareUnsigned(off, Long.MAX_VALUE - c) > 0) {
                        error = EINVAL;
                    } else {
                        error = grow(off + c);
                    }
                    if (error == null && ceilDiv(fileLength, c) > MAX_TALLY) {
                        res.checkErrors++; // qemu cannot hold the in-memory table
                        throw new Failed(ENOMEM);
                    }
                    if (error == null) {
                        refs.ensureSize(ceilDiv(fileLength, c));
                        res.corruptions--;
                        res.corruptionsFixed++;
                        inc(off, c);
                        continue;
                    }
                    rebuild = true;
                    message("ERROR could not resize image: " + error);
                }
                continue;
            }
            if (off != 0) {
                inc(off, c);
                long r = refs.get(cluster);
                if (r != 1) {
                    message("ERROR refcount block " + i + " refcount=" + Long.toUnsignedString(r));
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
    private void compare(boolean fixLeaksNow, boolean fixErrorsNow, boolean write) throws IOException {
        highest = 0;
        long per = geo.refblockEntries();
        int order = geo.refcountOrder;
        byte[] block = new byte[(int) c];
        LongList freed = new LongList();
        boolean dirtyAny = false;
        for (long bi = 0; bi * per < refs.size(); bi++) {
            long first = bi * per;
            long end = Math.min(refs.size(), first + per);
            long off = bi < reftable.length ? Refcounts.blockOffsetOf(reftable[(int) bi]) : 0;
            if (off != 0 && (off & (c - 1)) != 0) {
                signal(String.format("Refblock offset %s unaligned (reftable index: %s)", altHex(off), altHex(bi)));
                for (long i = first; i < end; i++) {
                    message("Can't get refcount for cluster " + i + ": " + EIO);
                    res.checkErrors++;
                }
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
            if (!readable(off, c)) {
                // a block qemu cannot read (bit 63, or past its largest offset): every refcount fails
                for (long i = first; i < end; i++) {
                    message("Can't get refcount for cluster " + i + ": " + EIO);
                    res.checkErrors++;
                }
                continue;
            }
            storage.read(ByteBuffer.wrap(block), off);
            boolean dirty = false;
            for (long i = first; i < end; i++) {
                int k = (int) (i - first);
                long r1 = refcountAt(block, k, order);
                long r2 = refs.get(i);
                if (r1 != 0 || r2 != 0) {
                    highest = i;
                }
                if (r1 != r2 && mismatch(i, r1, r2, fixLeaksNow, fixErrorsNow)) {
                    Refcounts.setEntry(block, k, order, r2);
                    dirty = true;
                    if (r2 == 0) {
                        freed.add(i);
                    }
                }
            }
            if (dirty && write) {
                storage.write(ByteBuffer.wrap(block), off);
                wrote = true;
                dirtyAny = true;
            }
        }
        if (dirtyAny) {
            storage.sync();
            punch(freed);
        }
    }

    /**
     * Writes the fixes a {@code compare} without writes decided: every
     * stored refcount that differs from the tally and may be fixed in this
     * mode takes the tally's value ({@link DiskRefcounts#predicted}).
     */
    private void writeRefcountFixes() throws IOException {
        long per = geo.refblockEntries();
        byte[] block = new byte[(int) c];
        LongList freed = new LongList();
        boolean any = false;
        for (long bi = 0; bi * per < refs.size() && bi < reftable.length; bi++) {
            long off = Refcounts.blockOffsetOf(reftable[(int) bi]);
            if (off == 0 || (off & (c - 1)) != 0 || !readable(off, c)) {
                continue;
            }
            long first = bi * per;
            long end = Math.min(refs.size(), first + per);
            storage.read(ByteBuffer.wrap(block), off);
            boolean dirty = false;
            for (long i = first; i < end; i++) {
                int k = (int) (i - first);
                long r1 = refcountAt(block, k, geo.refcountOrder);
                long r2 = disk.predicted(r1, i);
                if (r2 != r1) {
                    Refcounts.setEntry(block, k, geo.refcountOrder, r2);
                    dirty = true;
                    if (r2 == 0) {
                        freed.add(i);
                    }
                }
            }
            if (dirty) {
                storage.write(ByteBuffer.wrap(block), off);
                wrote = true;
                any = true;
            }
        }
        if (any) {
            storage.sync();
            punch(freed);
        }
    }

    /** Reports one refcount mismatch; true when it is to be fixed (counted as fixed). */
    private boolean mismatch(long cluster, long r1, long r2, boolean fixLeaksNow, boolean fixErrorsNow) {
        boolean leak = Long.compareUnsigned(r1, r2) > 0;
        boolean fix = false;
        if (r1 == 0) {
            rebuild = true;
        } else if (leak && fixLeaksNow || !leak && fixErrorsNow) {
            fix = true;
        }
        message((fix ? "Repairing" : leak ? "Leaked" : "ERROR") + " cluster " + cluster + " refcount="
                + Long.toUnsignedString(r1) + " reference=" + Long.toUnsignedString(r2));
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

    /** Deallocates clusters whose refcount dropped to 0 (qemu discards them), runs at a time. */
    private void punch(LongList freed) throws IOException {
        long[] f = freed.sorted();
        for (int i = 0; i < f.length; ) {
            int j = i + 1;
            while (j < f.length && f[j] == f[j - 1] + 1) {
                j++;
            }
            long from = f[i] << cb;
            long to = Math.min((f[j - 1] + 1) << cb, storage.size());
            if (to > from) {
                storage.punchHole(from, to - from);
            }
            i = j;
        }
    }

    // ---- rebuild (rebuild_refcount_structure) ----

    /**
     * New refcount blocks and table made from the tally, in clusters nothing
     * references (qemu's allocation: refblocks from their own range on,
     * the table from the start of the image, repeated while the table
     * grows). Everything is placed and checked against the old metadata
     * first; then blocks and table are written and synced, and only then
     * does the header point to them. The old structure is now leaked and
     * freed by the leak repair that follows.
     */
    private void rebuildRefcountStructure() throws IOException, Failed {
        message("Rebuilding refcount structure");
        Counts old = res.copy();
        NewStructure plan = new NewStructure();
        long end = refs.size();
        plan.placeRefblocks(0, end);
        long tableOffset;
        long tableClusters;
        boolean grown;
        do {
            tableClusters = ceilDiv(plan.entries * 8L, c);
            long[] firstFree = {0};
            tableOffset = allocate(tableClusters, firstFree);
            grown = plan.placeRefblocks(tableOffset >>> cb, (tableOffset >>> cb) + tableClusters);
        } while (grown);
        if (plan.failure != null) {
            message(plan.failure);
            res.checkErrors++;
            throw new Failed(ENOMEM);
        }
        for (int bi = 0; bi < plan.entries; bi++) {
            long off = plan.table[bi];
            if (off != 0 && overlap(0, off, c, true) != null) {
                message("ERROR writing refblock: " + EIO);
                res.checkErrors++;
                throw new Failed(EIO);
            }
        }
        if (overlap(0, tableOffset, plan.entries * 8L, true) != null) {
            message("ERROR writing reftable: " + EIO);
            throw new Failed(EIO);
        }
        long per = geo.refblockEntries();
        byte[] block = new byte[(int) c];
        for (int bi = 0; bi < plan.entries; bi++) {
            long off = plan.table[bi];
            if (off == 0) {
                continue;
            }
            Arrays.fill(block, (byte) 0);
            long first = (long) bi * per;
            long stop = Math.min(refs.size(), first + per);
            for (long i = refs.nextUsed(first, stop); i < stop; i = refs.nextUsed(i + 1, stop)) {
                Refcounts.setEntry(block, (int) (i - first), geo.refcountOrder, refs.get(i));
            }
            storage.write(ByteBuffer.wrap(block), off);
        }
        ByteBuffer table = ByteBuffer.allocate(plan.entries * 8);
        table.asLongBuffer().put(plan.table, 0, plan.entries);
        storage.write(table, tableOffset);
        storage.sync();
        writeAndSync(ByteBuffer.allocate(12).putLong(0, tableOffset).putInt(8, (int) tableClusters), 48);
        fileLength = Math.max(fileLength, storage.size());

        res.corruptions = 0;
        res.leaks = 0;
        rebuild = false;
        refs.clear();
        reftableOffset = tableOffset;
        reftable = Arrays.copyOf(plan.table, plan.entries);
        reftableEntries = plan.entries;
        overlaps = null;
        disk = new DiskRefcounts();
        calculate(false, false);
        long freshLeaks = 0;
        if (fixLeaks) {
            // the old structure is leaked now; what cannot be fixed here was leaked by the rebuild
            Counts saved = res.copy();
            res.set(new Counts());
            compare(true, false, true);
            if (rebuild) {
                message("ERROR rebuilt refcount structure is still broken");
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
        disk = new DiskRefcounts();
    }

    /** The new refcount table being planned (rebuild_refcounts_write_refblocks without the writes). */
    private final class NewStructure {
        long[] table = new long[0];
        int entries;
        String failure;

        /** Places a refcount block for every used cluster in [first, end); true when the table grew. */
        boolean placeRefblocks(long first, long end) {
            long per = geo.refblockEntries();
            long[] firstFree = {0};
            boolean grown = false;
            long stop = end;
            for (long cluster = refs.nextUsed(first, stop); cluster < stop;
                 cluster = refs.nextUsed(cluster + 1, stop)) {
                long bi = cluster >>> geo.refblockBits;
                long start = bi << geo.refblockBits;
                if (bi >= entries || table[(int) bi] == 0) {
                    firstFree[0] = Math.max(firstFree[0], start);
                    long off = allocate(1, firstFree);
                    if ((off >>> cb) >= stop) {
                        stop = (off >>> cb) + 1;
                    }
                    if (bi >= entries) {
                        long n = ceilDiv((bi + 1) * 8, c) * c / 8;
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
                cluster = start + per - 1;
            }
            return grown;
        }
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
        long cluster = start >= knownUsedFrom && start < knownUsedTo ? knownUsedTo : start;
        boolean firstGap = true;
        long contiguous = 0;
        long size = refs.size();
        for (; cluster < size && contiguous < count; cluster++) {
            if (refs.get(cluster) == 0) {
                contiguous++;
                if (firstGap) {
                    firstFree[0] = cluster;
                    firstGap = false;
                }
            } else {
                contiguous = 0;
            }
        }
        if (contiguous < count) {
            refs.ensureSize(cluster + count - contiguous);
        }
        cluster -= contiguous;
        for (long i = 0; i < count; i++) {
            refs.set(cluster + i, 1);
        }
        if (firstGap) {
            // nothing free from start to the old end, and the new clusters are used now
            if (start >= knownUsedFrom && start <= knownUsedTo) {
                knownUsedTo = Math.max(knownUsedTo, cluster + count);
            } else {
                knownUsedFrom = start;
                knownUsedTo = cluster + count;
            }
        }
        return cluster << cb;
    }

    // ---- COPIED flags (check_oflag_copied) ----

    /**
     * check_oflag_copied. With {@code report} the mismatches are counted and
     * printed, and a write refused by the overlap check fails the check;
     * without, nothing is reported and the result says whether every write
     * would be allowed. Writes happen only with {@code write}.
     */
    private boolean checkCopied(boolean report, boolean write) throws IOException, Failed {
        boolean repair = fixErrors || fixLeaks && res.checkErrors == 0 && res.corruptions == 0 && res.leaks == 0;
        long l1Offset = header.l1TableOffset;
        long size = Integer.toUnsignedLong(header.l1Size);
        for (long first = 0; first < size; first += L1_PAGE_ENTRIES) {
            int n = (int) Math.min(L1_PAGE_ENTRIES, size - first);
            long[] page = readPage(l1Offset + first * 8, n);
            for (int j = 0; j < n; j++) {
                long e = page[j];
                long l2 = L1Entry.l2Offset(e);
                if (l2 == 0) {
                    continue;
                }
                long r = disk.get(l2 >>> cb);
                if (!disk.known) {
                    continue;
                }
                if ((r == 1) != L1Entry.isCopied(e)) {
                    if (report) {
                        res.corruptions++;
                        message((repair ? "Repairing" : "ERROR") + " OFLAG_COPIED L2 cluster: l1_index="
                                + (first + j) + " l1_entry=" + Long.toHexString(e) + " refcount="
                                + Long.toUnsignedString(r));
                    }
                    if (repair) {
                        long at = l1Offset + (first + j) * 8;
                        if (overlap(MetadataOverlap.ACTIVE_L1, at, 8, report) != null) {
                            if (!report) {
                                return false;
                            }
                            res.checkErrors++;
                            throw new Failed(EIO);
                        }
                        if (write) {
                            long fixed = r == 1 ? e | L1Entry.COPIED : e & ~L1Entry.COPIED;
                            writeAndSync(ByteBuffer.allocate(8).putLong(0, fixed), at);
                        }
                        if (report) {
                            res.corruptions--;
                            res.corruptionsFixed++;
                        }
                    }
                }
                if (!checkCopiedL2(l2, repair, report, write)) {
                    return false;
                }
            }
        }
        if (wrote) {
            storage.sync();
        }
        return true;
    }

    private boolean checkCopiedL2(long l2, boolean repair, boolean report, boolean write)
            throws IOException, Failed {
        readL2(l2);
        long[] w = l2Words;
        int dirty = 0;
        for (int i = 0; i < geo.l2Entries; i++) {
            int wi = i * geo.entryWords;
            long e = w[wi];
            if (!L2Entry.hasHost(L2Entry.type(e, geo.extendedL2, dataFile))) {
                continue; // compressed, unallocated or a plain zero cluster
            }
            long off = L2Entry.hostOffset(e);
            long r = dataFile ? 1 : disk.get(off >>> cb);
            if (!dataFile && !disk.known) {
                continue;
            }
            if ((r == 1) != L2Entry.isCopied(e)) {
                if (report) {
                    res.corruptions++;
                    message((repair ? "Repairing" : "ERROR") + " OFLAG_COPIED data cluster: l2_entry="
                            + Long.toHexString(e) + " refcount=" + Long.toUnsignedString(r));
                }
                if (repair) {
                    w[wi] = r == 1 ? e | L2Entry.COPIED : e & ~L2Entry.COPIED;
                    dirty++;
                }
            }
        }
        if (dirty > 0) {
            if (overlap(MetadataOverlap.ACTIVE_L2, l2, c, report) != null) {
                if (!report) {
                    return false;
                }
                message("ERROR: Could not write L2 table; metadata overlap check failed: " + EIO);
                res.checkErrors++;
                throw new Failed(EIO);
            }
            if (write) {
                ByteBuffer b = ByteBuffer.allocate((int) c);
                b.asLongBuffer().put(w);
                storage.write(b, l2);
                wrote = true;
            }
            if (report) {
                res.corruptions -= dirty;
                res.corruptionsFixed += dirty;
            }
        }
        return true;
    }

    // ---- bitmaps (qcow2_check_bitmaps_refcounts) ----

    /**
     * The bitmap directory, each bitmap table and the clusters they point
     * to. A directory or table qemu would not load fails the check with a
     * corruption (qemu: -EINVAL).
     */
    private void checkBitmaps() throws IOException, Failed {
        BitmapDirectory.Extension ext = BitmapDirectory.extension(header);
        if (ext == null) {
            return;
        }
        inc(ext.directoryOffset(), ext.directorySize());
        List<long[]> tables = bitmapTables(ext);
        if (tables == null) {
            res.corruptions++;
            throw new Failed(EINVAL);
        }
        for (long[] t : tables) {
            long offset = t[0];
            long size = t[1];
            inc(offset, size * 8);
            if (!readable(offset, size * 8)) {
                res.corruptions++;
                throw new Failed(EIO);
            }
            // qemu loads (and validates) the whole table before counting its clusters
            for (int pass = 0; pass < 2; pass++) {
                for (long first = 0; first < size; first += L1_PAGE_ENTRIES) {
                    int n = (int) Math.min(L1_PAGE_ENTRIES, size - first);
                    long[] entries = readPage(offset + first * 8, n);
                    for (int k = 0; k < n; k++) {
                        long e = entries[k];
                        long data = e & BitmapDirectory.TABLE_ENTRY_OFFSET_MASK;
                        if (pass == 0) {
                            if ((e & BME_RESERVED) != 0 || data != 0 && ((e & BME_ALL_ONES) != 0
                                    || (data & (c - 1)) != 0)) {
                                res.corruptions++;
                                throw new Failed(EINVAL);
                            }
                        } else if (data != 0) {
                            inc(data, c);
                        }
                    }
                }
            }
        }
    }

    /** bitmap_list_load with check_dir_entry: (table offset, table size) per bitmap, null when qemu refuses. */
    private List<long[]> bitmapTables(BitmapDirectory.Extension ext) throws IOException {
        long size = ext.directorySize();
        if (size == 0 || size > BitmapDirectory.MAX_DIRECTORY_BYTES) {
            return null;
        }
        // past the end of the file the directory reads as zeros, and an all-zero entry is invalid (table
        // size 0): what lies in the file and one entry header beyond is all that can matter
        long inFile = Math.max(0, fileLength - ext.directoryOffset());
        ByteBuffer dir = storage.readBytes(ext.directoryOffset(), (int) Math.min(size, inFile + 24));
        List<long[]> out = new ArrayList<>();
        long virtual = header.size & ~511L;
        int at = 0;
        while (at < size) {
            if (at + 24 > size || out.size() + 1 > Integer.toUnsignedLong(ext.count()) || at + 24 > dir.limit()) {
                return null;
            }
            long tableOffset = dir.getLong(at);
            long tableSize = Integer.toUnsignedLong(dir.getInt(at + 8));
            int flags = dir.getInt(at + 12);
            int type = dir.get(at + 16) & 0xff;
            int granularity = dir.get(at + 17) & 0xff;
            int nameSize = Short.toUnsignedInt(dir.getShort(at + 18));
            long extra = Integer.toUnsignedLong(dir.getInt(at + 20));
            long entrySize = (24 + nameSize + extra + 7) & ~7L;
            if (at + entrySize > size || extra != 0) {
                return null;
            }
            long phys = tableSize * c;
            boolean bad = tableSize == 0 || tableOffset == 0 || (tableOffset & (c - 1)) != 0
                    || tableSize > BME_MAX_TABLE_SIZE || granularity > 31 || granularity < 9
                    || (flags & ~(BitmapDirectory.FLAG_IN_USE | BitmapDirectory.FLAG_AUTO)) != 0
                    || nameSize > BME_MAX_NAME_SIZE || type != 1 || phys > BME_MAX_PHYS_SIZE
                    || (flags & BitmapDirectory.FLAG_IN_USE) == 0
                    && Long.compareUnsigned(virtual, (phys * 8) << granularity) > 0;
            if (bad) {
                return null;
            }
            out.add(new long[]{tableOffset, tableSize});
            at += (int) entrySize;
        }
        return out.size() == Integer.toUnsignedLong(ext.count()) ? out : null;
    }

    // ---- header bits ----

    /** qcow2_mark_clean and qcow2_mark_consistent: the dirty and corrupt bits cleared once nothing is wrong. */
    private void markClean() throws IOException {
        if (header.version < 3) {
            return;
        }
        long bits = header.incompatible & ~(Qcow2Header.INCOMPAT_DIRTY | Qcow2Header.INCOMPAT_CORRUPT);
        if (bits != header.incompatible) {
            storage.sync();
            writeAndSync(ByteBuffer.allocate(8).putLong(0, bits), 72);
        }
    }

    // ---- helpers ----

    /** On-disk refcounts looked up one cluster at a time (qcow2_get_refcount), a few blocks cached. */
    private final class DiskRefcounts {
        private static final int SLOTS = 8;
        private final long[] offsets = new long[SLOTS];
        private final byte[][] blocks = new byte[SLOTS][];
        private int next;
        private int last = -1;
        /** Refcount table index of the block in slot {@link #last}. */
        private long lastIndex = -1;
        /** False when the last lookup failed (a misaligned block offset: qemu's -EIO). */
        boolean known;
        /**
         * Answer as if the leak (corruption) fixes a compare just decided were
         * written: a stored refcount that is not 0 and differs from the tally
         * reads as the tally's count.
         */
        boolean predictLeaks;
        boolean predictErrors;

        long predicted(long stored, long cluster) {
            if (stored == 0 || cluster >= refs.size() || !predictLeaks && !predictErrors) {
                return stored;
            }
            long counted = refs.get(cluster);
            if (counted == stored) {
                return stored;
            }
            boolean leak = Long.compareUnsigned(stored, counted) > 0;
            return leak && predictLeaks || !leak && predictErrors ? counted : stored;
        }

        DiskRefcounts() {
            Arrays.fill(offsets, -1);
        }

        long get(long cluster) throws IOException {
            known = true;
            long bi = cluster >>> geo.refblockBits;
            if (bi == lastIndex) {
                return predicted(refcountAt(blocks[last], (int) (cluster & (geo.refblockEntries() - 1)),
                        geo.refcountOrder), cluster);
            }
            if (bi >= reftable.length) {
                return 0;
            }
            long off = Refcounts.blockOffsetOf(reftable[(int) bi]);
            if (off == 0) {
                return 0;
            }
            if ((off & (c - 1)) == 0 && !readable(off, c)) {
                known = false; // a read error, not a corruption qemu signals
                return 0;
            }
            if ((off & (c - 1)) != 0) {
                known = false;
                if (!signaled && !signalPending) {
                    signalPending = true;
                    pendingSignal = String.format("Refblock offset %s unaligned (reftable index: %s)", altHex(off),
                            altHex(bi));
                }
                return 0;
            }
            int i = (int) (cluster & (geo.refblockEntries() - 1));
            for (int s = 0; s < SLOTS; s++) {
                if (offsets[s] == off) {
                    last = s;
                    lastIndex = bi;
                    return predicted(refcountAt(blocks[s], i, geo.refcountOrder), cluster);
                }
            }
            int s = next;
            next = (next + 1) % SLOTS;
            if (blocks[s] == null) {
                blocks[s] = new byte[(int) c];
            }
            storage.read(ByteBuffer.wrap(blocks[s]), off);
            offsets[s] = off;
            last = s;
            lastIndex = bi;
            return predicted(refcountAt(blocks[s], i, geo.refcountOrder), cluster);
        }
    }

    /**
     * The metadata a repair's write of [offset, offset + size) would land on
     * (the structures as they are now), or null; {@code signal}: report a
     * hit like qemu (once).
     */
    private String overlap(int ignore, long offset, long size, boolean signal) throws IOException {
        if (overlaps == null) {
            overlaps = MetadataOverlap.of(storage, header, reftableOffset, reftableEntries * 8, reftable,
                    reftable.length, snapshotsOffset, snapshotsSize, snapshots);
        }
        String hit = overlaps.check(ignore, offset, size);
        if (hit != null && signal) {
            signal("Preventing invalid write on metadata (overlaps with " + hit + ")");
        }
        return hit;
    }

    /** qcow2_signal_corruption, once per image; we never mark the image corrupt ourselves. */
    private void signal(String what) {
        if (!signaled) {
            signaled = true;
            signalPending = false;
            message("qcow2: Image is corrupt: " + what + "; further non-fatal corruption events will be suppressed");
        }
    }

    private void message(String m) {
        if (messages.size() < MAX_MESSAGES) {
            messages.add(m);
        } else {
            messagesDropped++;
        }
    }

    /** Grows the file (sparse) to {@code length}; the error text when the file system refuses. */
    private String grow(long length) {
        try {
            if (storage.size() < length) {
                storage.truncate(length);
                grown = true;
            }
            fileLength = Math.max(fileLength, length);
            return null;
        } catch (IOException e) {
            String why = e.getMessage() == null ? EIO : e.getMessage();
            message("Could not resize file: " + why);
            return why;
        }
    }

    private void writeAndSync(ByteBuffer b, long at) throws IOException {
        storage.write(b, at);
        storage.sync();
        wrote = true;
    }

    /**
     * Whether qemu can read {@code length} bytes at {@code offset}: its block
     * layer refuses requests beyond BDRV_MAX_LENGTH (2^63 - 1 rounded down to
     * 1 GiB) with EIO; anything else past the end of the file reads as zeros.
     */
    private static boolean readable(long offset, long length) {
        long max = Long.MAX_VALUE & -(1L << 30);
        return offset >= 0 && length >= 0 && length <= max && offset <= max - length;
    }

    /**
     * {@code count} table entries (at most a page) into a buffer reused by
     * every call: a 32 MiB L1 table costs one page of memory, not 32 MiB of
     * garbage. The result is valid until the next call.
     */
    private long[] readPage(long offset, int count) throws IOException {
        if (pageBuffer == null) {
            pageBuffer = ByteBuffer.allocate(L1_PAGE_ENTRIES * 8);
            pageWords = new long[L1_PAGE_ENTRIES];
        }
        pageBuffer.clear().limit(count * 8);
        storage.read(pageBuffer, offset);
        pageBuffer.flip().asLongBuffer().get(pageWords, 0, count);
        return pageWords;
    }

    /** {@code count} table entries, read a page at a time (no second copy of a big table as bytes). */
    private long[] readLongs(long offset, int count) throws IOException {
        long[] out = new long[count];
        ByteBuffer buf = ByteBuffer.allocate(Math.min(count, L1_PAGE_ENTRIES) * 8);
        for (int done = 0; done < count; ) {
            int n = Math.min(L1_PAGE_ENTRIES, count - done);
            buf.clear().limit(n * 8);
            storage.read(buf, offset + done * 8L);
            buf.flip().asLongBuffer().get(out, done, n);
            done += n;
        }
        return out;
    }

    /**
     * Refcount {@code i} of a block ({@link Refcounts#entry}), with the
     * byte-wide widths assembled by hand: the hot loops of a check run
     * before the JIT has optimised var handles.
     */
    private static long refcountAt(byte[] b, int i, int order) {
        switch (order) {
            case 4 -> {
                return (b[2 * i] & 0xff) << 8 | b[2 * i + 1] & 0xff;
            }
            case 5 -> {
                int at = 4 * i;
                return (long) (b[at] & 0xff) << 24 | (b[at + 1] & 0xff) << 16 | (b[at + 2] & 0xff) << 8
                        | b[at + 3] & 0xff;
            }
            case 6 -> {
                long v = 0;
                for (int k = 8 * i; k < 8 * i + 8; k++) {
                    v = v << 8 | b[k] & 0xff;
                }
                return v;
            }
            default -> {
                return Refcounts.entry(b, i, order);
            }
        }
    }

    private static long ceilDiv(long a, long b) {
        return a / b + (a % b == 0 ? 0 : 1);
    }

    /** C's %#x: "0x" and hex digits, but plain "0" for zero. */
    private static String altHex(long v) {
        return v == 0 ? "0" : "0x" + Long.toHexString(v);
    }
}
