package io.diskmorph.format.vmdk;

import io.diskmorph.image.CheckReport;
import io.diskmorph.image.CorruptImageException;
import io.diskmorph.storage.Storage;

import java.io.IOException;
import java.nio.ByteOrder;

/**
 * check for VMDK, in two parts.
 *
 * <p>What qemu-img 7.2 checks (vmdk_co_check): it walks the disk from sector
 * 0 in steps of the current extent's grain (a flat extent's whole size) and
 * stops at the first grain whose offset lies at or past the end of its file
 * ("ERROR: cluster offset for sector N points after EOF"), or whose lookup
 * fails; then the check itself fails ("Check failed: Invalid argument",
 * exit 1). The same walk, the same lines, the same result here.
 *
 * <p>What it misses, counted as corruptions (exit 2, "N errors were found"):
 * a grain directory whose redundant copy disagrees (another table, or
 * tables whose entries differ), grain directories and tables that lie past
 * the end of the file, grains that run past it, and grains or tables that
 * overlap metadata (the header, the embedded descriptor, a directory, a
 * table). Grains overlapping each other are not looked for. Memory: the
 * metadata ranges of one extent (a few per grain table), sorted once.
 */
final class VmdkChecker {
    /** Problems printed; all are counted. */
    static final int MAX_MESSAGES = 100;

    private final VmdkImage image;
    private final CheckReport report = new CheckReport();
    private final io.diskmorph.image.PhaseProgress progress;
    private long printed;
    private long unprinted;

    private VmdkChecker(VmdkImage image, io.diskmorph.image.PhaseProgress progress) {
        this.image = image;
        this.progress = progress;
    }

    /**
     * Progress, in guest bytes of the disk: phase "tables" (qemu's walk,
     * reported per grain table), then "grains" (every extent's tables and
     * grains against its file, per grain table).
     */
    static CheckReport run(VmdkImage image, io.diskmorph.image.PhaseProgress progress) throws IOException {
        VmdkChecker c = new VmdkChecker(image, progress);
        c.qemuWalk();
        long size = image.virtualSize();
        progress.update("grains", 0, size);
        for (Extent e : image.extents()) {
            if (e instanceof SparseExtent s) {
                c.sparse(s);
            } else if (e instanceof FlatExtent f) {
                c.flat(f);
            }
        }
        progress.update("grains", size, size);
        if (c.unprinted > 0) {
            c.report.error("ERROR: " + c.unprinted + " more problems (not listed)");
        }
        return c.report;
    }

    private void problem(String message) {
        report.corruptions++;
        if (printed++ < MAX_MESSAGES) {
            report.error("ERROR: " + message);
        } else {
            unprinted++;
        }
    }

    // ---- qemu's walk ----------------------------------------------------------------------

    /** vmdk_co_check: stops at the first grain past the end of its file, or at a lookup that fails. */
    private void qemuWalk() throws IOException {
        long total = image.virtualSize() / SparseHeader.SECTOR;
        long sector = 0;
        // the grain table of the last step: a 2 TB disk is 32 Mi steps through 65,536 tables
        SparseExtent tableExtent = null;
        long tableIndex = -1;
        long table = 0;
        long[] entries = null;
        // the size of the current extent's file, asked once per file: a size is a system call, and an 8 GiB
        // disk is 131,072 steps
        Storage sizedFile = null;
        long fileSize = 0;
        long bytes = total * SparseHeader.SECTOR;
        progress.update("tables", 0, bytes);
        while (sector < total) {
            Extent e = image.extentAt(sector * SparseHeader.SECTOR);
            long extentSector = sector - e.guestStart / SparseHeader.SECTOR;
            long step = e instanceof SparseExtent s ? s.header.grainSectors() : e.length / SparseHeader.SECTOR;
            if (e instanceof FlatExtent f) {
                if (f.fileStart >= f.file.size()) {
                    qemuFailure("ERROR: cluster offset for sector " + sector + " points after EOF", "Invalid argument");
                    return;
                }
            } else if (e instanceof SparseExtent s) {
                long coverage = s.header.gtCoverage() / SparseHeader.SECTOR;
                long index = extentSector / coverage;
                if (s.file != sizedFile) {
                    sizedFile = s.file;
                    fileSize = sizedFile.size();
                }
                try {
                    if (s != tableExtent || index != tableIndex) {
                        progress.update("tables", sector * SparseHeader.SECTOR, bytes);
                        tableExtent = s;
                        tableIndex = index;
                        table = s.grainTableOffset(index);
                        entries = table == 0 ? null : s.grainTable(table);
                    }
                    long extentSectors = e.length / SparseHeader.SECTOR;
                    if (table == 0 || table >= fileSize) {
                        // no table (or one that reads zeros): every grain up to the next table is unallocated;
                        // step over them on qemu's grid
                        long nextTable = s.nextTableIndex(index + 1, s.header.gdEntries(), false);
                        long skipTo = Math.min(nextTable * coverage, extentSectors);
                        sector += Math.ceilDiv(skipTo - extentSector, step) * step;
                        continue;
                    }
                    int k = (int) (extentSector % coverage / step);
                    int next = k;
                    while (next < s.header.gtEntries() && entries[next] == 0) {
                        next++; // unallocated grains: nothing for qemu's check to look at
                    }
                    if (next > k) {
                        long target = Math.min(index * coverage + (long) next * step, extentSectors);
                        sector += Math.ceilDiv(target - extentSector, step) * step;
                        continue;
                    }
                    long grain = s.grainSector(entries[k], table + (long) k * s.header.entryBytes());
                    if (grain >= 0 && grain * SparseHeader.SECTOR >= fileSize) {
                        qemuFailure("ERROR: cluster offset for sector " + sector + " points after EOF",
                                "Invalid argument");
                        return;
                    }
                } catch (CorruptImageException x) {
                    // qemu's VMDK_ERROR (-1, EPERM)
                    qemuFailure("ERROR: could not get cluster_offset for sector " + sector, "Operation not permitted");
                    return;
                }
            }
            sector += step;
        }
        progress.update("tables", bytes, bytes);
    }

    private void qemuFailure(String message, String failure) {
        report.corruptions++;
        printed++;
        report.error(message);
        report.failure = failure;
    }

    // ---- what qemu misses -----------------------------------------------------------------

    private void flat(FlatExtent f) throws IOException {
        long fileSize = f.file.size();
        if (f.fileStart < fileSize && f.fileStart + f.length > fileSize) {
            problem(String.format("flat extent %s ends at offset 0x%x, past the end of the file (0x%x): the "
                    + "guest range from 0x%x reads zeros", f.file.name(), f.fileStart + f.length, fileSize,
                    f.guestStart + fileSize - f.fileStart));
        }
    }

    private void sparse(SparseExtent s) throws IOException {
        SparseHeader h = s.header;
        long fileSize = s.file.size();
        long tableBytes = roundUpToSector(h.gtBytes());
        Ranges metadata = new Ranges(4 + countTables(s, fileSize));
        metadata.add(0, h.kind() == SparseHeader.Kind.ESX_COWD ? 2048 : SparseHeader.SECTOR, Ranges.HEADER, 0);
        if (h.descriptorOffset() > 0) {
            metadata.add(h.descriptorOffset(), h.descriptorBytes(), Ranges.DESCRIPTOR, 0);
        }
        long directoryBytes = roundUpToSector(h.gdEntries() * h.entryBytes());
        metadata.add(h.gdOffset(), directoryBytes, Ranges.DIRECTORY, 0);
        pastEnd(s, h.gdOffset(), directoryBytes, fileSize, "grain directory");
        if (h.rgdOffset() != 0) {
            metadata.add(h.rgdOffset(), directoryBytes, Ranges.REDUNDANT_DIRECTORY, 0);
            pastEnd(s, h.rgdOffset(), directoryBytes, fileSize, "redundant grain directory");
        }
        long coverage = h.gtCoverage();
        long inFile = s.directoryEntriesInFile(); // later entries read as zeros in both directories
        for (long i = nextIndex(s, 0, inFile); i < inFile; i = nextIndex(s, i + 1, inFile)) {
            long table = tableOrProblem(s, i, false);
            long redundant = h.rgdOffset() == 0 ? 0 : tableOrProblem(s, i, true);
            if (table > 0) {
                pastEnd(s, table, tableBytes, fileSize, "grain table " + i);
                if (table < fileSize) { // tables past the end share no byte with anything in the file
                    metadata.add(table, tableBytes, Ranges.TABLE, i);
                }
            }
            if (redundant > 0) {
                pastEnd(s, redundant, tableBytes, fileSize, "redundant grain table " + i);
                if (redundant < fileSize) {
                    metadata.add(redundant, tableBytes, Ranges.REDUNDANT_TABLE, i);
                }
            }
            if (h.rgdOffset() != 0 && (table == 0) != (redundant == 0)) {
                problem(String.format("%s: grain directory entry %d (guest offset 0x%x) has %s, its redundant copy "
                        + "%s", s.where, i, s.guestStart + i * coverage, table == 0 ? "no grain table" : "a grain "
                        + "table", redundant == 0 ? "none" : "one"));
            } else if (table > 0 && redundant > 0 && table != redundant) {
                compareTables(s, i, table, redundant);
            }
        }
        if (!metadata.complete()) {
            report.error("note: " + s.where + ": more than " + Ranges.MAX_RANGES + " grain tables; overlaps with "
                    + "metadata were not looked for");
            grains(s, null, fileSize);
            return;
        }
        metadata.sort();
        String overlap = metadata.firstOverlap();
        if (overlap != null) {
            problem(s.where + ": " + overlap + " (metadata overlaps)");
        }
        grains(s, metadata, fileSize);
    }

    /** The next directory entry from {@code from} that names a table in either directory, or {@code to}. */
    private static long nextIndex(SparseExtent s, long from, long to) throws IOException {
        return Math.min(s.nextTableIndex(from, to, false), s.nextTableIndex(from, to, true));
    }

    /** The grain tables (both directories) that start inside the file: the metadata ranges to hold. */
    private static long countTables(SparseExtent s, long fileSize) throws IOException {
        long count = 0;
        long entries = s.directoryEntriesInFile();
        for (long i = nextIndex(s, 0, entries); i < entries && count < Ranges.MAX_RANGES;
             i = nextIndex(s, i + 1, entries)) {
            for (int copy = 0; copy < (s.header.rgdOffset() == 0 ? 1 : 2); copy++) {
                long table;
                try {
                    table = copy == 0 ? s.grainTableOffset(i) : s.redundantGrainTableOffset(i);
                } catch (CorruptImageException e) {
                    continue;
                }
                if (table > 0 && table < fileSize) {
                    count++;
                }
            }
        }
        return count;
    }

    private long tableOrProblem(SparseExtent s, long index, boolean redundant) throws IOException {
        try {
            return redundant ? s.redundantGrainTableOffset(index) : s.grainTableOffset(index);
        } catch (CorruptImageException e) {
            problem(e.getMessage());
            return 0;
        }
    }

    private void compareTables(SparseExtent s, long index, long table, long redundant) throws IOException {
        long[] a = s.grainTable(table).clone(); // the cache may drop the first when it reads the second
        long[] b = s.grainTable(redundant);
        for (int k = 0; k < s.header.gtEntries(); k++) {
            if (a[k] != b[k]) {
                problem(String.format("%s: grain table %d (0x%x) and its redundant copy (0x%x) disagree: entry %d "
                        + "is %d in one, %d in the other", s.where, index, table, redundant, k, a[k], b[k]));
                return;
            }
        }
    }

    private void pastEnd(SparseExtent s, long offset, long bytes, long fileSize, String what) {
        if (offset + bytes > fileSize) {
            problem(String.format("%s: %s at offset 0x%x lies past the end of the file (0x%x)", s.where, what,
                    offset, fileSize));
        }
    }

    /** Every allocated grain: inside the file, clear of metadata (when {@code metadata} is not null). */
    private void grains(SparseExtent s, Ranges metadata, long fileSize) throws IOException {
        SparseHeader h = s.header;
        long grainBytes = h.grainBytes();
        long inFile = s.directoryEntriesInFile();
        for (long i = nextIndex(s, 0, inFile); i < inFile; i = nextIndex(s, i + 1, inFile)) {
            long table;
            try {
                table = s.grainTableOffset(i);
            } catch (CorruptImageException e) {
                continue; // reported with the directories
            }
            if (table == 0) {
                continue;
            }
            progress.update("grains", s.guestStart + i * h.gtCoverage(), image.virtualSize());
            long[] entries = s.grainTable(table);
            for (int k = 0; k < h.gtEntries(); k++) {
                long guest = i * h.gtCoverage() + k * grainBytes; // inside the extent
                if (guest >= s.length) {
                    break;
                }
                long sector;
                try {
                    sector = s.grainSector(entries[k], table + (long) k * h.entryBytes());
                } catch (CorruptImageException e) {
                    problem(e.getMessage());
                    continue;
                }
                if (sector < 0) {
                    continue;
                }
                long host = sector * SparseHeader.SECTOR;
                long bytes = h.compressed() ? compressedBytes(s, host, fileSize)
                        : Math.min(grainBytes, s.length - guest); // the part the disk uses
                if (host >= fileSize) {
                    continue; // qemu's own check reports it
                }
                if (host + bytes > fileSize) {
                    problem(String.format("%s: the grain at guest offset 0x%x (offset 0x%x) runs past the end of "
                            + "the file (0x%x)", s.where, s.guestStart + guest, host, fileSize));
                }
                String hit = metadata == null ? null : metadata.overlapping(host, bytes);
                if (hit != null) {
                    problem(String.format("%s: the grain at guest offset 0x%x (offset 0x%x) overlaps %s", s.where,
                            s.guestStart + guest, host, hit));
                }
            }
        }
    }

    /** A compressed grain's marker and data, rounded up to a sector (a sector without markers). */
    private static long compressedBytes(SparseExtent s, long host, long fileSize) throws IOException {
        if (!s.header.markers() || host + 12 > fileSize) {
            return SparseHeader.SECTOR;
        }
        long size = Integer.toUnsignedLong(s.file.readBytes(host + 8, 4).order(ByteOrder.LITTLE_ENDIAN).getInt(0));
        return roundUpToSector(12 + size);
    }

    private static long roundUpToSector(long bytes) {
        return Math.ceilDiv(bytes, SparseHeader.SECTOR) * SparseHeader.SECTOR;
    }

    /**
     * Metadata ranges of one extent file, sorted for lookups: start, length
     * and a tag (kind and table number) per range, 16 bytes each, sized
     * exactly up front and sorted in place (a 2 TB disk's 131,072 tables take
     * 2 MiB); at most {@link #MAX_RANGES}.
     */
    private static final class Ranges {
        /** Two per grain table of an 8 TB disk, with room: 16 MiB. */
        static final int MAX_RANGES = 1 << 20;
        static final int HEADER = 0;
        static final int DESCRIPTOR = 1;
        static final int DIRECTORY = 2;
        static final int REDUNDANT_DIRECTORY = 3;
        static final int TABLE = 4;
        static final int REDUNDANT_TABLE = 5;
        private static final int INDEX_BITS = 28;

        private final long[] starts;
        private final int[] lengths;
        private final int[] tags;
        private int n;
        private boolean full;

        Ranges(long capacity) {
            int c = (int) Math.min(capacity, MAX_RANGES);
            starts = new long[c];
            lengths = new int[c];
            tags = new int[c];
        }

        /** False once full: the ranges are then not complete, and overlaps are not looked for. */
        boolean add(long start, long length, int kind, long index) {
            if (n == starts.length) {
                full = true;
                return false;
            }
            starts[n] = start;
            lengths[n] = (int) Math.min(length, Integer.MAX_VALUE);
            tags[n] = kind << INDEX_BITS | (int) index;
            n++;
            return true;
        }

        boolean complete() {
            return !full;
        }

        private long end(int i) {
            return starts[i] + lengths[i];
        }

        static String describe(int tag) {
            int index = tag & ((1 << INDEX_BITS) - 1);
            return switch (tag >>> INDEX_BITS) {
                case HEADER -> "the header";
                case DESCRIPTOR -> "the embedded descriptor";
                case DIRECTORY -> "the grain directory";
                case REDUNDANT_DIRECTORY -> "the redundant grain directory";
                case TABLE -> "grain table " + index;
                default -> "redundant grain table " + index;
            };
        }

        /** Sorts by start, in place (heapsort: no extra memory, no recursion). */
        void sort() {
            for (int i = n / 2 - 1; i >= 0; i--) {
                siftDown(i, n);
            }
            for (int end = n - 1; end > 0; end--) {
                swap(0, end);
                siftDown(0, end);
            }
        }

        private void siftDown(int root, int size) {
            while (true) {
                int child = 2 * root + 1;
                if (child >= size) {
                    return;
                }
                if (child + 1 < size && starts[child + 1] > starts[child]) {
                    child++;
                }
                if (starts[root] >= starts[child]) {
                    return;
                }
                swap(root, child);
                root = child;
            }
        }

        private void swap(int a, int b) {
            long s = starts[a];
            starts[a] = starts[b];
            starts[b] = s;
            int l = lengths[a];
            lengths[a] = lengths[b];
            lengths[b] = l;
            int t = tags[a];
            tags[a] = tags[b];
            tags[b] = t;
        }

        /** The first pair of ranges that share bytes (after {@link #sort}), described; null when none. */
        String firstOverlap() {
            long maxEnd = -1;
            int maxAt = -1;
            for (int i = 0; i < n; i++) {
                if (starts[i] < maxEnd) {
                    return String.format("%s (offset 0x%x) overlaps %s (offset 0x%x)", describe(tags[i]), starts[i],
                            describe(tags[maxAt]), starts[maxAt]);
                }
                if (end(i) > maxEnd) {
                    maxEnd = end(i);
                    maxAt = i;
                }
            }
            return null;
        }

        /**
         * What metadata [start, start + length) overlaps first (after {@link #sort}), or null: among the
         * 64 ranges that start last before its end (metadata ranges do not overlap one another unless
         * reported on their own, so the one that could reach it is among them).
         */
        String overlapping(long start, long length) {
            long end = start + length;
            int hi = upperBound(end) - 1;
            for (int i = Math.max(0, hi - 63); i <= hi; i++) { // the first one, in file order
                if (end(i) > start) {
                    return describe(tags[i]);
                }
            }
            return null;
        }

        /** The number of ranges that start before {@code value}. */
        private int upperBound(long value) {
            int lo = 0;
            int hi = n;
            while (lo < hi) {
                int mid = (lo + hi) >>> 1;
                if (starts[mid] < value) {
                    lo = mid + 1;
                } else {
                    hi = mid;
                }
            }
            return lo;
        }
    }
}
