package io.diskmorph.format.qed;

import io.diskmorph.image.CheckReport;
import io.diskmorph.image.PhaseProgress;
import io.diskmorph.image.TableWalkProgress;
import io.diskmorph.storage.Storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.LongBuffer;
import java.util.HashMap;
import java.util.Map;

/**
 * One consistency pass over a QED image with qemu's semantics (block/qed-check.c):
 * <ul>
 * <li>an L1 entry that is not a valid table offset, or an L2 entry that is not
 *     a valid cluster offset (misaligned, inside the header, at or past the
 *     usable file size), is a corruption; with {@code fix} it is dropped
 *     (set to 0, unallocated) and counted as fixed instead;</li>
 * <li>a cluster referenced twice (tables overlapping each other or the L1,
 *     data shared) is a corruption that cannot be fixed; a table whose
 *     clusters are already in use is not descended;</li>
 * <li>every cluster between the header and the usable file size that nothing
 *     references is a leak; qemu never repairs leaks for QED;</li>
 * <li>allocated/fragmented clusters count the data entries of each L2 table
 *     (fragmented: not directly after the previous data entry of the table).</li>
 * </ul>
 * qemu counts leaks up to {@code roundup(file, C) / (C - 1)} clusters (a
 * divisor typo in qed_bytes_to_clusters), which reports phantom leaks once a
 * file holds C - 1 clusters or more (16 MiB at 4 KiB clusters); we count up to
 * the real end of the file.
 * Memory: a sparse bitmap of referenced clusters and one table page.
 */
final class QedChecker {
    /**
     * The leaks qemu 7.2's QED check reports on a sound file (every cluster
     * below the end referenced once): its used-cluster bitmap indexes
     * cluster k at k * C / (C - 1) (qed_bytes_to_clusters divides by the
     * cluster size minus one), so one bit in every C - 1 is never set and
     * counts as a leak: floor(floor(F / C) / (C - 1)). Measured against
     * qemu-img 7.2 on files it made itself (QedCheckTest).
     */
    public static long qemuPhantomLeaks(long clusterSize, long fileLength) {
        return fileLength / clusterSize / (clusterSize - 1);
    }

    private static final int MAX_MESSAGES = 100;

    private final Storage storage;
    private final QedHeader header;
    private final long fileSize;
    private final boolean fix;
    private final PhaseProgress progress;
    private final CheckReport report = new CheckReport();
    private final ClusterBitmap used = new ClusterBitmap();
    private final int pageBytes;
    private long messagesDropped;

    private QedChecker(Storage storage, QedHeader header, boolean fix, PhaseProgress progress) throws IOException {
        this.progress = progress;
        this.storage = storage;
        this.header = header;
        this.fileSize = QedHeader.usableFileSize(storage.size(), header.clusterSize);
        this.fix = fix;
        this.pageBytes = TablePage.pageBytes(header.tableBytes());
    }

    /**
     * Runs one pass; with {@code fix}, invalid table entries are dropped on
     * disk (no sync). Progress: phase "tables", the guest bytes of the L1
     * entries walked.
     */
    static CheckReport run(Storage storage, QedHeader header, boolean fix, PhaseProgress progress) throws IOException {
        return new QedChecker(storage, header, fix, progress).check();
    }

    private CheckReport check() throws IOException {
        long c = header.clusterSize;
        report.totalClusters = ceilDiv(header.imageSize, c);
        report.allocatedClusters = 0;
        report.fragmentedClusters = 0;
        report.compressedClusters = 0;
        boolean complete = checkL1();
        if (complete) {
            // only when every table could be read, like qemu
            long clusters = fileSize / c;
            report.leaks = clusters - header.headerSize - used.count();
            if (report.leaks > 0) {
                message(report.leaks + " cluster(s) between the header and the end of the file are not referenced"
                        + " (leaked)");
            }
        }
        if (messagesDropped > 0) {
            report.messages.add("... and " + messagesDropped + " more problems");
        }
        return report;
    }

    /** Walks the L1 table page by page; returns false when a table could not be read. */
    private boolean checkL1() throws IOException {
        long l1 = header.l1TableOffset;
        markUsed(l1, header.tableSize, "L1 table");
        boolean complete = true;
        long perPage = pageBytes / 8;
        long[] entries = new long[(int) perPage];
        long l2Coverage = header.tableEntries() * header.clusterSize;
        TableWalkProgress walk = new TableWalkProgress(progress, "tables", l2Coverage, header.imageSize);
        for (long first = 0; first < header.tableEntries(); first += perPage) {
            long pageOffset = l1 + first * 8;
            readPage(pageOffset, entries);
            boolean changed = false;
            for (int i = 0; i < perPage; i++) {
                walk.at(first + i);
                long l2 = entries[i];
                if (l2 == 0) {
                    continue;
                }
                long entryOffset = pageOffset + 8L * i;
                if (!header.isTableOffsetValid(l2, fileSize)) {
                    if (fix) {
                        entries[i] = 0;
                        changed = true;
                        report.corruptionsFixed++;
                        message(String.format("Repairing L1 entry %d at 0x%x: invalid L2 table offset 0x%x dropped",
                                first + i, entryOffset, l2));
                    } else {
                        report.corruptions++;
                        message(String.format("ERROR L1 entry %d at 0x%x: L2 table offset 0x%x is invalid",
                                first + i, entryOffset, l2));
                    }
                    continue;
                }
                if (!markUsed(l2, header.tableSize, "L2 table")) {
                    continue; // overlaps something already referenced: do not trust its entries
                }
                try {
                    checkL2(l2);
                } catch (IOException e) {
                    report.checkErrors++;
                    message(String.format("ERROR could not read the L2 table at 0x%x: %s", l2, e.getMessage()));
                    complete = false;
                }
            }
            if (changed) {
                writePage(pageOffset, entries);
            }
        }
        walk.done();
        return complete;
    }

    private void checkL2(long l2) throws IOException {
        long c = header.clusterSize;
        long perPage = pageBytes / 8;
        long[] entries = new long[(int) perPage];
        long last = 0;
        for (long first = 0; first < header.tableEntries(); first += perPage) {
            long pageOffset = l2 + first * 8;
            readPage(pageOffset, entries);
            boolean changed = false;
            for (int i = 0; i < perPage; i++) {
                long offset = entries[i];
                if (offset == QedImage.UNALLOCATED || offset == QedImage.ZERO_CLUSTER) {
                    continue;
                }
                report.allocatedClusters++;
                if (last != 0 && last + c != offset) {
                    report.fragmentedClusters++;
                }
                last = offset;
                if (!header.isClusterOffsetValid(offset, fileSize)) {
                    if (fix) {
                        entries[i] = 0;
                        changed = true;
                        report.corruptionsFixed++;
                        message(String.format("Repairing L2 table 0x%x entry %d: invalid cluster offset 0x%x dropped",
                                l2, first + i, offset));
                    } else {
                        report.corruptions++;
                        message(String.format("ERROR L2 table 0x%x entry %d: cluster offset 0x%x is invalid",
                                l2, first + i, offset));
                    }
                    continue;
                }
                markUsed(offset, 1, "data cluster");
            }
            if (changed) {
                writePage(pageOffset, entries);
            }
        }
    }

    /** Marks clusters referenced; each one already referenced is a corruption. Returns true when none was. */
    private boolean markUsed(long offset, long clusters, String what) {
        long first = offset / header.clusterSize;
        long doubles = 0;
        for (long n = first; n < first + clusters; n++) {
            if (!used.set(n)) {
                doubles++;
            }
        }
        if (doubles > 0) {
            report.corruptions += doubles;
            message(String.format("ERROR %s at 0x%x: %d cluster(s) already referenced elsewhere", what, offset,
                    doubles));
        }
        return doubles == 0;
    }

    private void readPage(long offset, long[] entries) throws IOException {
        ByteBuffer b = storage.readBytes(offset, pageBytes).order(ByteOrder.LITTLE_ENDIAN);
        b.asLongBuffer().get(entries);
    }

    private void writePage(long offset, long[] entries) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(pageBytes).order(ByteOrder.LITTLE_ENDIAN);
        LongBuffer lb = b.asLongBuffer();
        lb.put(entries);
        storage.write(b, offset);
    }

    private void message(String m) {
        if (report.messages.size() < MAX_MESSAGES) {
            report.messages.add(m);
        } else {
            messagesDropped++;
        }
    }

    private static long ceilDiv(long a, long b) {
        return a / b + (a % b == 0 ? 0 : 1);
    }

    /** Which host clusters are referenced: sparse, 64 KiB of bits per touched chunk. */
    static final class ClusterBitmap {
        private static final int CHUNK_SHIFT = 19;
        private final Map<Long, long[]> chunks = new HashMap<>();
        private long count;

        /** Sets bit {@code n}; false when it was already set. */
        boolean set(long n) {
            long[] chunk = chunks.computeIfAbsent(n >>> CHUNK_SHIFT, k -> new long[1 << (CHUNK_SHIFT - 6)]);
            int bit = (int) (n & ((1 << CHUNK_SHIFT) - 1));
            long mask = 1L << (bit & 63);
            if ((chunk[bit >>> 6] & mask) != 0) {
                return false;
            }
            chunk[bit >>> 6] |= mask;
            count++;
            return true;
        }

        long count() {
            return count;
        }
    }
}
