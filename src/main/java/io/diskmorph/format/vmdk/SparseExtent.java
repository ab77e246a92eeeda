package io.diskmorph.format.vmdk;

import io.diskmorph.image.CorruptImageException;
import io.diskmorph.image.Mapping;
import io.diskmorph.image.UnsupportedFeatureException;
import io.diskmorph.image.cache.SyncTracker;
import io.diskmorph.storage.Storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.zip.DataFormatException;
import java.util.zip.Inflater;

/**
 * A sparse extent (hosted "KDMV", ESX "COWD" or seSparse; {@link
 * SparseHeader}): guest offset -> grain directory entry -> grain table ->
 * grain table entry -> grain. Tables are read on demand through the image's
 * {@link TableCache}. Like qemu, grain offsets are not checked against the
 * file when mapping or reading (a grain past the end reads as zeros);
 * {@code check} reports them.
 */
final class SparseExtent extends Extent {
    /** Compressed grains are inflated into memory: bounded (VMware writes 64 KiB; qemu would take 1 GiB). */
    static final long MAX_COMPRESSED_GRAIN = 2L << 20;

    /** A new grain that is only partly written is filled from below in pieces of this size. */
    private static final int GRAIN_PIECE = 1 << 20;

    /** Grain table entry decoded: not allocated here (falls through to the parent). */
    static final long UNALLOCATED = -1;
    /** Grain table entry decoded: a zeroed grain. */
    static final long ZEROED = -2;

    private static final long SE_TABLE_ALLOCATED = 0x1000000000000000L;
    private static final int MARKER_BYTES = 12; // lba u64, size u32

    final SparseHeader header;
    /** The file's name, for messages. */
    final String where;
    private final TableCache tables;
    private final long grainBytes;
    private final long coverage;

    // the last grain inflated (reads of a compressed grain come in pieces)
    private Inflater inflater;
    private byte[] grain;
    /** The compressed grain being inflated, kept for the next (a new buffer per grain was garbage all through
     *  a read of a streamOptimized disk). */
    private ByteBuffer compressed;
    private int grainLength;
    private long grainHost = -1;
    /** Where the next grain goes (-1: not asked yet). */
    private long nextFree = -1;

    SparseExtent(long guestStart, String type, Storage file, SparseHeader header, TableCache tables)
            throws UnsupportedFeatureException {
        super(guestStart, header.capacityBytes(), type, file);
        this.header = header;
        this.where = file.name();
        this.tables = tables;
        this.grainBytes = header.grainBytes();
        this.coverage = header.gtCoverage();
        if (header.compressed() && grainBytes > MAX_COMPRESSED_GRAIN) {
            throw new UnsupportedFeatureException(where + ": compressed grains of " + grainBytes + " bytes are not "
                    + "supported (diskmorph inflates grains of up to " + MAX_COMPRESSED_GRAIN + " bytes)");
        }
    }

    @Override
    long grainBytes() {
        return grainBytes;
    }

    @Override
    long statusEnd(long offset) {
        return Math.min(length, (offset / grainBytes + 1) * grainBytes);
    }

    /** Byte offset of the grain table of directory entry {@code index}, 0 when it has none. */
    long grainTableOffset(long index) throws IOException {
        return tableOffset(header.gdOffset(), index);
    }

    /** The same in the redundant grain directory (hosted extents with one; 0 otherwise). */
    long redundantGrainTableOffset(long index) throws IOException {
        return header.rgdOffset() == 0 ? 0 : tableOffset(header.rgdOffset(), index);
    }

    /**
     * How many directory entries can name a table: past this index both
     * directories' pages lie past the end of the file, so they read as zeros
     * (a hostile capacity can make a directory of 32 Mi entries in a small
     * file; loops stop here).
     */
    long directoryEntriesInFile() throws IOException {
        long fileSize = tables.fileSize(file);
        long inFile = entriesBefore(header.gdOffset(), fileSize);
        if (header.rgdOffset() != 0) {
            inFile = Math.max(inFile, entriesBefore(header.rgdOffset(), fileSize));
        }
        return Math.min(header.gdEntries(), inFile);
    }

    /** Entries of the directory at {@code directory} whose page starts before {@code fileSize}. */
    private long entriesBefore(long directory, long fileSize) {
        if (directory >= fileSize) {
            return 0;
        }
        long pageBytes = (long) TableCache.GD_PAGE_ENTRIES * header.entryBytes();
        return Math.ceilDiv(fileSize - directory, pageBytes) * TableCache.GD_PAGE_ENTRIES;
    }

    /**
     * The first directory entry in [from, to) that is not zero in the grain
     * directory ({@code redundant}: in the redundant one), or {@code to}:
     * the entries are scanned page by page, not asked one by one.
     */
    long nextTableIndex(long from, long to, boolean redundant) throws IOException {
        long directory = redundant ? header.rgdOffset() : header.gdOffset();
        if (directory == 0) {
            return to;
        }
        long end = Math.min(to, directoryEntriesInFile());
        long i = from;
        while (i < end) {
            long page = i / TableCache.GD_PAGE_ENTRIES;
            int count = (int) Math.min(TableCache.GD_PAGE_ENTRIES, header.gdEntries() - page * TableCache.GD_PAGE_ENTRIES);
            long[] entries = tables.table(file, directoryPageOffset(directory, i), count, header.entryBytes());
            int k = (int) (i % TableCache.GD_PAGE_ENTRIES);
            int last = (int) Math.min(count, end - page * TableCache.GD_PAGE_ENTRIES);
            while (k < last && entries[k] == 0) {
                k++;
            }
            if (k < last) {
                return page * TableCache.GD_PAGE_ENTRIES + k;
            }
            i = (page + 1) * TableCache.GD_PAGE_ENTRIES;
        }
        return to;
    }

    /** Where the directory page holding entry {@code index} starts in the file. */
    private long directoryPageOffset(long directory, long index) {
        return directory + index / TableCache.GD_PAGE_ENTRIES * TableCache.GD_PAGE_ENTRIES * header.entryBytes();
    }

    private long tableOffset(long directory, long index) throws IOException {
        long page = index / TableCache.GD_PAGE_ENTRIES;
        int count = (int) Math.min(TableCache.GD_PAGE_ENTRIES, header.gdEntries() - page * TableCache.GD_PAGE_ENTRIES);
        long entry = tables.table(file, directoryPageOffset(directory, index), count,
                header.entryBytes())[(int) (index % TableCache.GD_PAGE_ENTRIES)];
        if (header.kind() != SparseHeader.Kind.SE_SPARSE) {
            return entry * SparseHeader.SECTOR; // u32 sectors
        }
        if (entry == 0) {
            return 0;
        }
        if ((entry & 0xffffffff00000000L) != SE_TABLE_ALLOCATED) {
            throw new CorruptImageException("VMDK seSparse grain directory", directory + index * 8, String.format(
                    "%s: entry 0x%016x is not a grain table reference", where, entry));
        }
        long sector = header.seGrainTablesSector() + (entry & 0xffffffffL) * (header.gtBytes() / SparseHeader.SECTOR);
        if (sector > 0xffffffffL) { // qemu keeps table sectors in 32 bits
            throw new CorruptImageException("VMDK seSparse grain directory", directory + index * 8, String.format(
                    "%s: grain table %d lies past sector 2^32", where, entry & 0xffffffffL));
        }
        return sector * SparseHeader.SECTOR;
    }

    /** The grain table at {@code offset}, entries as stored. */
    long[] grainTable(long offset) throws IOException {
        return tables.table(file, offset, header.gtEntries(), header.entryBytes());
    }

    /**
     * A grain table entry decoded: the grain's sector in the file, or {@link
     * #UNALLOCATED} or {@link #ZEROED}. {@code at} locates the entry for messages.
     */
    long grainSector(long entry, long at) throws CorruptImageException {
        if (header.kind() != SparseHeader.Kind.SE_SPARSE) {
            if (entry == 0) {
                return UNALLOCATED;
            }
            return entry == 1 && header.zeroedGrains() ? ZEROED : entry;
        }
        long kind = entry >>> 60;
        if (kind == 0) {
            if (entry != 0) {
                throw badEntry(entry, at);
            }
            return UNALLOCATED;
        }
        if (kind == 1 || kind == 2) { // unmapped or zero
            return ZEROED;
        }
        if (kind != 3) {
            throw badEntry(entry, at);
        }
        long cluster = (entry & 0x0fff000000000000L) >>> 48 | (entry & 0x0000ffffffffffffL) << 12;
        try {
            long sector = Math.addExact(header.seGrainsSector(), Math.multiplyExact(cluster, header.grainSectors()));
            if (sector > Descriptor.MAX_SECTORS) {
                throw new ArithmeticException();
            }
            return sector;
        } catch (ArithmeticException e) {
            throw new CorruptImageException("VMDK seSparse grain table", at, String.format(
                    "%s: grain %d lies past 2^63 bytes", where, cluster));
        }
    }

    private CorruptImageException badEntry(long entry, long at) {
        return new CorruptImageException("VMDK seSparse grain table", at, String.format(
                "%s: entry 0x%016x is not a grain reference", where, entry));
    }

    @Override
    Mapping mapping(long offset, long max) throws IOException {
        long index = offset / coverage;
        long inTable = offset % coverage;
        long inTableLength = Math.min(max, coverage - inTable);
        long table = grainTableOffset(index);
        if (table == 0) {
            // a run of directory entries without tables: one answer (an empty 2 TB disk is a few calls)
            long wanted = Math.ceilDiv(offset + max, coverage); // the directory entries the range reaches
            long next = nextTableIndex(index + 1, wanted, false);
            return new Mapping.Unallocated(Math.min(max, next * coverage - offset));
        }
        long[] entries = grainTable(table);
        int first = (int) (inTable / grainBytes);
        long inGrain = inTable % grainBytes;
        long sector = grainSector(entries[first], table + (long) first * header.entryBytes());
        if (header.compressed() && sector >= 0) {
            return new Mapping.Compressed(Math.min(inTableLength, grainBytes - inGrain), sector * SparseHeader.SECTOR,
                    (int) (2 * grainBytes), inGrain);
        }
        long wanted = Math.ceilDiv(inGrain + inTableLength, grainBytes);
        int n = 1;
        for (long previous = sector; n < wanted; n++) {
            long next = grainSector(entries[first + n], table + (long) (first + n) * header.entryBytes());
            boolean same = sector < 0 ? next == sector
                    : !header.compressed() && next == previous + header.grainSectors();
            if (!same) {
                break;
            }
            previous = next;
        }
        long len = Math.min(inTableLength, n * grainBytes - inGrain);
        if (sector == UNALLOCATED) {
            return new Mapping.Unallocated(len);
        }
        if (sector == ZEROED) {
            return new Mapping.Zero(len);
        }
        return new Mapping.Data(len, sector * SparseHeader.SECTOR + inGrain, file);
    }

    /**
     * Reads {@code dst.remaining()} guest bytes from {@code inGrain} on of the
     * compressed grain stored at {@code host}: behind a grain marker (lba,
     * compressed size) when the extent has markers, as a bare zlib stream of
     * at most a grain otherwise (qemu's vmdk_read_extent).
     */
    void readCompressed(long host, long inGrain, ByteBuffer dst) throws IOException {
        if (host != grainHost) {
            inflate(host);
        }
        if (inGrain + dst.remaining() > grainLength) {
            throw new CorruptImageException("VMDK compressed grain", host, where + ": inflates to " + grainLength
                    + " bytes, fewer than the disk needs from it");
        }
        dst.put(grain, (int) inGrain, dst.remaining());
    }

    private void inflate(long host) throws IOException {
        grainHost = -1;
        long dataAt = host;
        long size = grainBytes;
        if (header.markers()) {
            ByteBuffer marker = file.readBytes(host, MARKER_BYTES).order(ByteOrder.LITTLE_ENDIAN);
            size = Integer.toUnsignedLong(marker.getInt(8));
            if (size == 0 || size > 2 * grainBytes) {
                throw new CorruptImageException("VMDK grain marker", host, where + ": compressed size " + size
                        + " (1 to " + 2 * grainBytes + " bytes)");
            }
            dataAt = host + MARKER_BYTES;
        }
        if (compressed == null || compressed.capacity() < size) {
            compressed = ByteBuffer.allocate((int) size);
        }
        compressed.clear().limit((int) size);
        file.read(compressed, dataAt);
        compressed.flip();
        if (grain == null) {
            grain = new byte[(int) grainBytes];
            inflater = new Inflater();
        }
        inflater.reset();
        inflater.setInput(compressed);
        int produced = 0;
        byte[] spare = new byte[1]; // asks for output past a full grain: the end of the stream, or too much
        try {
            while (!inflater.finished()) {
                int remaining = inflater.getRemaining();
                int n = produced < grain.length ? inflater.inflate(grain, produced, grain.length - produced)
                        : inflater.inflate(spare);
                if (n > 0 && produced == grain.length) {
                    throw new DataFormatException("inflates to more than a grain");
                }
                produced += n;
                if (n == 0 && !inflater.finished()) {
                    if (inflater.needsDictionary()) {
                        throw new DataFormatException("the stream needs a preset dictionary");
                    }
                    if (inflater.needsInput() || inflater.getRemaining() == remaining) {
                        throw new DataFormatException("the compressed stream is truncated");
                    }
                }
            }
        } catch (DataFormatException e) {
            throw new CorruptImageException("VMDK compressed grain", host, where + ": cannot inflate: "
                    + e.getMessage());
        }
        grainLength = produced;
        grainHost = host;
    }

    // ---- writes ---------------------------------------------------------------------------

    /** Why this extent cannot take guest writes, or null when it can. */
    String whyNotWritable() {
        if (header.kind() == SparseHeader.Kind.ESX_COWD) {
            return "ESX sparse extents (COWD) are read only";
        }
        if (header.kind() == SparseHeader.Kind.SE_SPARSE) {
            return "seSparse extents are read only (as in qemu)";
        }
        if (header.compressed()) {
            return "a streamOptimized (compressed) extent is written only as a whole, by 'diskmorph convert -O vmdk "
                    + "-o subformat=streamOptimized'";
        }
        if (header.version() == 3) {
            return "a version 3 sparse extent (changed block tracking) is read only, as in qemu";
        }
        if (header.gtEntries() != SparseHeader.MAX_HOSTED_GT_ENTRIES) {
            return "grain tables of " + header.gtEntries() + " entries (diskmorph writes the usual 512)";
        }
        return null;
    }

    /**
     * Refuses, before anything is written, a write of {@code length} bytes at
     * {@code offset} that would write through damaged metadata: a grain
     * table past the end of the file or over the header, descriptor or a
     * directory, or (for writes up to 64 MiB; longer ones are checked grain
     * by grain as they go) an allocated grain inside that metadata.
     */
    void checkWrite(long offset, long length) throws IOException {
        long end = offset + length;
        for (long index = offset / coverage; index * coverage < end; index++) {
            long table = grainTableOffset(index);
            checkTableWritable(index, table, false);
            checkTableWritable(index, redundantGrainTableOffset(index), true);
            if (table == 0 || length > 64L << 20) {
                continue;
            }
            long from = Math.max(offset, index * coverage);
            long to = Math.min(end, (index + 1) * coverage);
            for (long g = from / grainBytes; g * grainBytes < to; g++) {
                int k = (int) (g * grainBytes % coverage / grainBytes);
                long sector = grainSector(grainTable(table)[k], table + (long) k * header.entryBytes());
                if (sector >= 0 && sector < header.overheadSectors()) {
                    throw grainInMetadata(table, k, sector);
                }
            }
        }
    }

    private CorruptImageException grainInMetadata(long table, int k, long sector) {
        return new CorruptImageException("VMDK grain table", table + (long) k * header.entryBytes(), where
                + ": grain at sector " + sector + " lies in the metadata before the grains (sector "
                + header.overheadSectors() + "); nothing written ('diskmorph check' reports it)");
    }

    /** A grain table a write would change: inside the file, clear of the header, descriptor and directories. */
    private void checkTableWritable(long index, long table, boolean redundant) throws IOException {
        if (table == 0) {
            return;
        }
        long bytes = header.gtBytes();
        long directoryBytes = header.gdEntries() * header.entryBytes();
        String problem = null;
        if (table + bytes > tables.fileSize(file)) {
            problem = "lies past the end of the file";
        } else if (table < SparseHeader.SECTOR
                || overlaps(table, bytes, header.descriptorOffset(), header.descriptorBytes())
                || overlaps(table, bytes, header.gdOffset(), directoryBytes)
                || header.rgdOffset() != 0 && overlaps(table, bytes, header.rgdOffset(), directoryBytes)) {
            problem = "overlaps the header, the descriptor or a grain directory";
        }
        if (problem != null) {
            throw new CorruptImageException("VMDK grain directory", (redundant ? header.rgdOffset()
                    : header.gdOffset()) + index * header.entryBytes(), where + ": " + (redundant ? "redundant " : "")
                    + "grain table " + index + " " + problem + "; nothing written ('diskmorph check' reports it)");
        }
    }

    private static boolean overlaps(long a, long aLength, long b, long bLength) {
        return bLength > 0 && a < b + bLength && b < a + aLength;
    }

    /**
     * Writes {@code src} at {@code offset} of the extent (inside one grain at
     * most: the caller splits at grain boundaries through {@link #grainBytes}).
     */
    void write(ByteBuffer src, long offset, VmdkImage image) throws IOException {
        while (src.hasRemaining()) {
            long inGrain = offset % grainBytes;
            int n = (int) Math.min(src.remaining(), grainBytes - inGrain);
            writeInGrain(src.slice(src.position(), n), offset, image);
            src.position(src.position() + n);
            offset += n;
        }
    }

    private void writeInGrain(ByteBuffer src, long offset, VmdkImage image) throws IOException {
        long index = offset / coverage;
        int k = (int) (offset % coverage / grainBytes);
        long inGrain = offset % grainBytes;
        long table = tableForWrite(index);
        long sector = grainSector(grainTable(table)[k], table + (long) k * header.entryBytes());
        SyncTracker data = tables.tracker(file);
        if (sector >= 0) {
            if (sector < header.overheadSectors()) {
                throw grainInMetadata(table, k, sector);
            }
            data.write(src, sector * SparseHeader.SECTOR + inGrain); // allocated: in place
            return;
        }
        long host = allocate(grainBytes);
        if (inGrain == 0 && src.remaining() == grainBytes) {
            data.write(src, host); // the grain first: no table names it before it is durable
        } else {
            // the rest of the grain from the parent (zeros for a zeroed grain), a piece at a time: grains
            // may be up to 1 GiB
            long grainGuest = guestStart + offset - inGrain;
            long srcEnd = inGrain + src.remaining();
            ByteBuffer piece = ByteBuffer.allocate((int) Math.min(grainBytes, GRAIN_PIECE));
            for (long at = 0; at < grainBytes; at += piece.capacity()) {
                int n = (int) Math.min(piece.capacity(), grainBytes - at);
                piece.clear().limit(n);
                if (at < inGrain || at + n > srcEnd) {
                    if (sector == ZEROED) {
                        java.util.Arrays.fill(piece.array(), 0, n, (byte) 0);
                    } else {
                        image.readBelow(piece, grainGuest + at);
                    }
                }
                long from = Math.max(at, inGrain);
                long to = Math.min(at + n, srcEnd);
                if (from < to) {
                    piece.put((int) (from - at), src, (int) (src.position() + from - inGrain), (int) (to - from));
                }
                data.write(piece.clear().limit(n), host + at);
            }
        }
        setGrainEntry(index, table, k, host / SparseHeader.SECTOR);
    }

    /**
     * A whole grain at {@code offset} (the last one may end with the disk)
     * zeroed by its entry when the extent has zeroed grains, or left alone
     * when it is unallocated and reads zeros ({@code noParent}); false when
     * zeros must be written.
     */
    boolean zeroWholeGrain(long offset, boolean noParent, VmdkImage image) throws IOException {
        long index = offset / coverage;
        int k = (int) (offset % coverage / grainBytes);
        long table = grainTableOffset(index);
        long sector = table == 0 ? UNALLOCATED
                : grainSector(grainTable(table)[k], table + (long) k * header.entryBytes());
        if (sector == ZEROED || sector == UNALLOCATED && noParent) {
            return true;
        }
        if (!header.zeroedGrains()) {
            return false;
        }
        if (table == 0) {
            table = tableForWrite(index);
        }
        // qemu's vmdk_pwritev: the entry becomes "zeroed"; an allocated grain is left unreferenced
        setGrainEntry(index, table, k, 1);
        return true;
    }

    /** Sets entry {@code k} of grain table {@code index} in both copies (written back later, after the data). */
    private void setGrainEntry(long index, long table, int k, long value) throws IOException {
        tables.setEntry(file, table, header.gtEntries(), header.entryBytes(), k, value);
        long redundant = redundantGrainTableOffset(index);
        if (redundant != 0) {
            tables.setEntry(file, redundant, header.gtEntries(), header.entryBytes(), k, value);
        }
    }

    /**
     * The grain table of directory entry {@code index}, made when the
     * directory has none (images qemu creates have all of them; other
     * writers leave entries 0): a zeroed table (and a redundant one) at the
     * end of the file, synced, then the directory entries, synced.
     */
    private long tableForWrite(long index) throws IOException {
        long table = grainTableOffset(index);
        long redundant = redundantGrainTableOffset(index);
        checkTableWritable(index, table, false);
        checkTableWritable(index, redundant, true);
        if (table != 0 && (header.rgdOffset() == 0 || redundant != 0)) {
            return table;
        }
        int bytes = (int) header.gtBytes();
        SyncTracker tracker = tables.tracker(file);
        long slot = allocate(header.rgdOffset() != 0 && redundant == 0 ? 2L * bytes : bytes);
        long at = slot;
        ByteBuffer zeros = ByteBuffer.allocate(bytes);
        if (table == 0) {
            table = at;
            tracker.write(zeros.clear(), table);
            at += bytes;
        }
        if (header.rgdOffset() != 0 && redundant == 0) {
            redundant = at;
            tracker.write(zeros.clear(), redundant);
        }
        tracker.flush();
        tables.writeDirectoryEntry(file, header.gdOffset(), header.gdEntries(), index, table / SparseHeader.SECTOR);
        if (header.rgdOffset() != 0) {
            tables.writeDirectoryEntry(file, header.rgdOffset(), header.gdEntries(), index,
                    redundant / SparseHeader.SECTOR);
        }
        tracker.flush();
        return table;
    }

    /**
     * {@code bytes} at the end of the file, from a grain boundary (qemu's
     * next_cluster_sector: the file size rounded up to a grain), so that
     * grains stay aligned as qemu and in-place conversion want them.
     */
    private long allocate(long bytes) throws IOException {
        if (nextFree < 0) {
            nextFree = Math.ceilDiv(tables.fileSize(file), grainBytes) * grainBytes;
        }
        long at = nextFree;
        long end = at + Math.ceilDiv(bytes, grainBytes) * grainBytes;
        if (end / SparseHeader.SECTOR > 0xffffffffL) { // entries hold 32-bit sectors
            throw new UnsupportedFeatureException(where + ": the extent file would grow past 2 TiB (sector 2^32), "
                    + "where grain table entries cannot reach");
        }
        nextFree = end;
        tables.grew(file, at + bytes);
        return at;
    }

    void close() {
        if (inflater != null) {
            inflater.end();
            inflater = null;
        }
    }
}
