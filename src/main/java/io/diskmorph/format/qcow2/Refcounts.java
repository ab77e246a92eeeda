package io.diskmorph.format.qcow2;

import io.diskmorph.image.CorruptImageException;
import io.diskmorph.image.UnsupportedFeatureException;
import io.diskmorph.image.cache.Dependencies;
import io.diskmorph.image.cache.MetadataCache;
import io.diskmorph.image.cache.SyncTracker;
import io.diskmorph.image.cache.WriteDependency;
import io.diskmorph.storage.Storage;

import java.io.IOException;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;

/**
 * Refcount table and refcount blocks (qcow2.rst "Reference counts"): reading
 * any cluster's refcount through a {@link MetadataCache} of blocks, and, for
 * writers, allocating clusters at the end of the image with exact refcounts
 * (new refcount blocks and a moved, larger refcount table count themselves).
 *
 * <p>Write protocol, as dependencies: increments (new clusters) go to cached
 * blocks at once, which may be written any time (a crash then leaks);
 * {@link #writes} is what a table that references a new cluster depends on:
 * the blocks, then the refcount table entries that point to new blocks (or
 * a moved table, then the header). Decrements wait ({@link #free}) until
 * what dropped the references is durable ({@link #applyFrees}), so a crash
 * can leak a cluster but never free a referenced one.
 */
final class Refcounts {
    private static final VarHandle BE16 = MethodHandles.byteArrayViewVarHandle(short[].class, ByteOrder.BIG_ENDIAN);
    private static final VarHandle BE32 = MethodHandles.byteArrayViewVarHandle(int[].class, ByteOrder.BIG_ENDIAN);
    private static final VarHandle BE64 = MethodHandles.byteArrayViewVarHandle(long[].class, ByteOrder.BIG_ENDIAN);
    /** Refcount table entry bits 9-63: the refcount block's host offset (bit 63 included, as qemu reads it). */
    static final long TABLE_OFFSET_MASK = 0xffff_ffff_ffff_fe00L;
    /** Refcount table entry bits that must be clear (qemu REFT_RESERVED_MASK). */
    static final long TABLE_RESERVED = 0x1ffL;

    /** Points the header at a moved refcount table (a write through the tracker; the caller syncs). */
    interface HeaderSwitch {
        void refcountTableMoved(long tableOffset, int tableClusters) throws IOException;
    }

    private final SyncTracker file;
    private final Qcow2Geometry geo;
    private final MetadataCache<RefcountBlock> blocks;
    private final HeaderSwitch headerSwitch;
    private final WriteDependency writes = this::flushStructure;
    private long tableOffset;
    private int tableClusters;
    private long[] table;
    private int dirtyLo = Integer.MAX_VALUE;
    private int dirtyHi = -1;
    private boolean tableMoved;
    private long allocEnd = -1;
    /** Pairs (first cluster index, cluster count) whose refcounts drop by one at {@link #applyFrees}. */
    private final LongList deferred = new LongList();
    /** What dropped the references in {@link #deferred}: durable before the refcounts drop. */
    private final Dependencies freeAfter = new Dependencies();
    /** The writer's overlap check (null for check's repairs): existing blocks are checked, new ones added. */
    private MetadataOverlap overlap;

    private Refcounts(SyncTracker file, Qcow2Geometry geo, long tableOffset, int tableClusters, long[] table,
                      long cacheBytes, HeaderSwitch headerSwitch) {
        this.file = file;
        this.geo = geo;
        this.tableOffset = tableOffset;
        this.tableClusters = tableClusters;
        this.table = table;
        this.headerSwitch = headerSwitch;
        this.blocks = new MetadataCache<>("qcow2 refcount block", file, (int) geo.clusterSize,
                (int) Math.max(4, cacheBytes / geo.clusterSize), () -> new RefcountBlock(geo.clusterSize));
    }

    /**
     * Loads the refcount table (its size was validated against qemu's 8 MiB
     * cap by the header), with {@code cacheBytes} of blocks cached;
     * {@code headerSwitch} is called when the table moves.
     */
    static Refcounts load(SyncTracker file, Qcow2Geometry geo, long tableOffset, int tableClusters,
                          long cacheBytes, HeaderSwitch headerSwitch) throws IOException {
        int bytes = Math.toIntExact(tableClusters * geo.clusterSize);
        ByteBuffer raw = file.storage().readBytes(tableOffset, bytes);
        long[] table = new long[bytes / 8];
        raw.asLongBuffer().get(table);
        return new Refcounts(file, geo, tableOffset, tableClusters, table, cacheBytes, headerSwitch);
    }

    void setOverlapCheck(MetadataOverlap overlap) {
        this.overlap = overlap;
    }

    long tableOffset() {
        return tableOffset;
    }

    int tableClusters() {
        return tableClusters;
    }

    /** The refcount table's entries (owned by this object: not to be changed). */
    long[] tableEntries() {
        return table;
    }

    /** Host offset of refcount block {@code index}, 0 when none; corrupt when misaligned. */
    long blockOffset(long index) throws CorruptImageException {
        if (index >= table.length) {
            return 0;
        }
        long off = blockOffsetOf(table[(int) index]);
        if (off < 0) {
            // bit 63 is part of the offset field (qcow2.rst "Refcount table"): no file reaches 2^63
            throw new CorruptImageException("qcow2 refcount table", tableOffset + index * 8, String.format(
                    "refcount block offset 0x%x is past any possible end of file (refcount table index %d)", off,
                    index));
        }
        if (!geo.isClusterAligned(off)) {
            throw new CorruptImageException("qcow2 refcount table", tableOffset + index * 8, String.format(
                    "refcount block offset 0x%x is not cluster-aligned (refcount table index %d)", off, index));
        }
        return off;
    }

    /** Refcount of cluster {@code clusterIndex} (0 beyond the table or without a block). */
    long get(long clusterIndex) throws IOException {
        long bi = clusterIndex >>> geo.refblockBits;
        long off = blockOffset(bi);
        if (off == 0) {
            return 0;
        }
        return entry(blocks.get(off).bytes, (int) (clusterIndex & (geo.refblockEntries() - 1)), geo.refcountOrder);
    }

    /**
     * Counts clusters below {@code endCluster} with a non-zero refcount,
     * stopping once {@code limit} is reached (qemu's metadata preallocation
     * heuristic). Reads blocks directly, without filling the cache.
     */
    long countUsed(long endCluster, long limit) throws IOException {
        long count = 0;
        long perBlock = geo.refblockEntries();
        byte[] scratch = null;
        for (long bi = 0; bi * perBlock < endCluster && count < limit && bi < table.length; bi++) {
            long off = blockOffset(bi);
            if (off == 0) {
                continue;
            }
            RefcountBlock cached = blocks.peek(off);
            byte[] data;
            if (cached != null) {
                data = cached.bytes;
            } else {
                if (scratch == null) {
                    scratch = new byte[(int) geo.clusterSize];
                }
                file.storage().read(ByteBuffer.wrap(scratch), off);
                data = scratch;
            }
            int n = (int) Math.min(perBlock, endCluster - bi * perBlock);
            for (int i = 0; i < n && count < limit; i++) {
                if (entry(data, i, geo.refcountOrder) != 0) {
                    count++;
                }
            }
        }
        return count;
    }

    /** True when dirty blocks fill the cache or frees pile up (the owner should flush). */
    boolean overCapacity() {
        return blocks.isMostlyDirty() || deferred.size() > (1 << 20);
    }

    // ---- writing ----

    /**
     * Where the next cluster is allocated: past the end of the file, of
     * every cluster with a refcount, and of {@code minEnd}; computed once.
     */
    private long allocEnd() throws IOException {
        if (allocEnd < 0) {
            long end = Math.max(align(file.storage().size()), align(Math.max(geo.clusterSize, minEnd)));
            end = Math.max(end, tableOffset + (long) tableClusters * geo.clusterSize);
            long perBlock = geo.refblockEntries();
            long last = -1;
            // one pass from the end, past the zero entries (most of a new image's table) without a call each:
            // it runs before the JIT has compiled anything, 8192 entries for 64 KiB clusters
            for (int bi = table.length - 1; bi >= 0; bi--) {
                if (table[bi] == 0) {
                    continue;
                }
                long off = blockOffset(bi);
                if (off == 0) {
                    continue;
                }
                end = Math.max(end, off + geo.clusterSize);
                if (last < 0) {
                    int i = lastUsedEntry(blocks.get(off).bytes, geo.refcountOrder);
                    if (i >= 0) {
                        last = bi * perBlock + i;
                    }
                }
            }
            allocEnd = Math.max(end, (last + 1) << geo.clusterBits);
        }
        return allocEnd;
    }

    /** Zeros {@link #lastUsedEntry} compares a block's pieces with. */
    private static final byte[] ZERO_PIECE = new byte[4096];

    /**
     * The last non-zero entry of a refcount block, or -1. Found from its last
     * non-zero byte: a block of a new image is mostly zeros, and testing its
     * 32768 entries one by one cost a copy ~40 ms before the JIT had warmed up.
     */
    static int lastUsedEntry(byte[] data, int order) {
        // whole zero pieces skipped by a comparison that reads 8 bytes at a time, then byte by byte
        int end = data.length;
        while (end >= ZERO_PIECE.length
                && Arrays.equals(data, end - ZERO_PIECE.length, end, ZERO_PIECE, 0, ZERO_PIECE.length)) {
            end -= ZERO_PIECE.length;
        }
        int b = end - 1;
        while (b >= 0 && data[b] == 0) {
            b--;
        }
        if (b < 0) {
            return -1;
        }
        // the entries that share byte b: the last of them that is non-zero
        int first = order >= 3 ? b >>> (order - 3) : b << (3 - order);
        int last = order >= 3 ? first : first + (1 << (3 - order)) - 1;
        for (int i = last; i >= first; i--) {
            if (entry(data, i, order) != 0) {
                return i;
            }
        }
        throw new IllegalStateException("non-zero byte " + b + " in no entry"); // unreachable
    }

    private long minEnd;
    /** Where the next compressed allocation may continue (0: start a new cluster). */
    private long freeByteOffset;

    /** The first allocation happens at or after {@code end} (metadata the owner knows about). */
    void reserveBelow(long end) {
        minEnd = Math.max(minEnd, end);
    }

    private long align(long v) {
        return (v + geo.clusterSize - 1) & -geo.clusterSize;
    }

    /** Allocates one cluster at the end of the image with refcount 1. */
    long allocate() throws IOException {
        long off = bump(1);
        setNew(off >>> geo.clusterBits);
        return off;
    }

    /**
     * Allocates {@code size} bytes (1..cluster size) for compressed data,
     * packed after the previous compressed allocation like qemu's
     * qcow2_alloc_bytes: continue in the partly used cluster while it has
     * room and its refcount is not saturated, spill into the next cluster
     * when that one is the next allocation, else start a new cluster. Every
     * cluster the bytes touch gains one reference.
     */
    long allocateBytes(int size) throws IOException {
        long offset = freeByteOffset;
        if (offset != 0 && get(offset >>> geo.clusterBits) == refcountMax()) {
            offset = 0;
        }
        long freeInCluster = geo.clusterSize - (offset & (geo.clusterSize - 1));
        if (offset == 0 || freeInCluster < size) {
            long next = bump(1); // counted below, with the rest of the range
            if (offset == 0 || align(offset) != next) {
                offset = next;
            }
        }
        long first = offset >>> geo.clusterBits;
        long last = (offset + size - 1) >>> geo.clusterBits;
        for (long ci = first; ci <= last; ci++) {
            increment(ci);
        }
        freeByteOffset = ((offset + size) & (geo.clusterSize - 1)) == 0 ? 0 : offset + size;
        return offset;
    }

    /** Largest refcount the entry width holds (all ones; -1 as unsigned for 64 bits). */
    private long refcountMax() {
        return geo.refcountBits == 64 ? -1L : (1L << geo.refcountBits) - 1;
    }

    /** Adds one reference to a cluster allocated in this session. */
    private void increment(long clusterIndex) throws IOException {
        RefcountBlock b = writableBlock(clusterIndex);
        int i = (int) (clusterIndex & (geo.refblockEntries() - 1));
        long v = entry(b.bytes, i, geo.refcountOrder);
        if (v == refcountMax()) {
            throw new CorruptImageException("qcow2 refcount block", b.hostOffset(), String.format(
                    "refcount of cluster 0x%x would overflow", clusterIndex << geo.clusterBits));
        }
        setEntry(b.bytes, i, geo.refcountOrder, v + 1);
        blocks.markDirty(b);
    }

    /** Allocates {@code clusters} adjacent clusters for a table at the end of the image, each with refcount 1. */
    long allocateRun(long clusters) throws IOException {
        long off = bump(clusters);
        for (long i = 0; i < clusters; i++) {
            setNew((off >>> geo.clusterBits) + i);
        }
        return off;
    }

    private long bump(long clusters) throws IOException {
        long off = allocEnd();
        long end = Math.addExact(off, clusters << geo.clusterBits);
        if (end > Qcow2Geometry.MAX_HOST_OFFSET) {
            throw new UnsupportedFeatureException("qcow2 image would grow past the 2^56 byte offset limit");
        }
        allocEnd = end;
        return off;
    }

    /** Sets the refcount of a free cluster to 1. */
    private void setNew(long clusterIndex) throws IOException {
        RefcountBlock b = writableBlock(clusterIndex);
        int i = (int) (clusterIndex & (geo.refblockEntries() - 1));
        if (entry(b.bytes, i, geo.refcountOrder) != 0) {
            throw new CorruptImageException("qcow2 refcount block", b.hostOffset(), String.format(
                    "cluster 0x%x past the end of the image already has a refcount", clusterIndex << geo.clusterBits));
        }
        setEntry(b.bytes, i, geo.refcountOrder, 1);
        blocks.markDirty(b);
    }

    /** The block holding {@code clusterIndex}'s refcount, creating it (and growing the table) when missing. */
    private RefcountBlock writableBlock(long clusterIndex) throws IOException {
        long bi = clusterIndex >>> geo.refblockBits;
        if (bi >= table.length) {
            growTable(bi);
        }
        long off = blockOffset(bi);
        if (off == 0) {
            long newOff = bump(1);
            table[(int) bi] = newOff;
            markTableDirty((int) bi);
            RefcountBlock nb = blocks.create(newOff);
            nb.checked = true;
            if (overlap != null) {
                overlap.addRefcountBlock(newOff);
            }
            // the new block counts itself (or lands in another block); the cache keeps nb meanwhile
            setNew(newOff >>> geo.clusterBits);
            return nb;
        }
        RefcountBlock b = blocks.get(off);
        if (!b.checked) {
            if (overlap != null) {
                overlap.refuseTableWrite("refcount block", off, geo.clusterSize);
            }
            b.checked = true;
        }
        return b;
    }

    /**
     * Moves the refcount table to the end of the image with room for block
     * {@code minIndex}, for the clusters of the new table itself and for the
     * blocks that count them. The old table is freed after the header switch.
     */
    private void growTable(long minIndex) throws IOException {
        long start = allocEnd() >>> geo.clusterBits;
        long clusters = Math.max(tableClusters + (tableClusters + 1) / 2, 1);
        while (true) {
            long entries = clusters << (geo.clusterBits - 3);
            // highest cluster once the table and up to a few new blocks are placed
            long last = start + clusters + 2 + (clusters >>> geo.refblockBits);
            if (entries > minIndex && entries > (last >>> geo.refblockBits)) {
                break;
            }
            clusters++;
        }
        if (clusters * geo.clusterSize > Qcow2Header.MAX_REFTABLE_BYTES) {
            throw new UnsupportedFeatureException("qcow2 refcount table would exceed qemu's limit of 8 MiB");
        }
        long newOff = bump(clusters);
        free(tableOffset >>> geo.clusterBits, tableClusters, writes); // once the header points elsewhere
        table = Arrays.copyOf(table, (int) (clusters << (geo.clusterBits - 3)));
        tableOffset = newOff;
        tableClusters = (int) clusters;
        tableMoved = true;
        if (overlap != null) {
            overlap.moveRefcountTable(newOff, clusters * geo.clusterSize);
        }
        for (long c = 0; c < clusters; c++) {
            setNew((newOff >>> geo.clusterBits) + c);
        }
    }

    private void markTableDirty(int index) {
        dirtyLo = Math.min(dirtyLo, index);
        dirtyHi = Math.max(dirtyHi, index);
    }

    /**
     * Drops one reference from {@code count} clusters from {@code firstCluster}
     * on, at {@link #applyFrees}, once {@code after} (what dropped the
     * references) is durable.
     */
    void free(long firstCluster, long count, WriteDependency after) {
        deferred.add(firstCluster);
        deferred.add(count);
        freeAfter.add(after);
    }

    /**
     * The refcount structure's writes as one dependency: the blocks, then
     * the table entries that point to new blocks, or a moved table and then
     * the header; each step durable before the next.
     */
    WriteDependency writes() {
        return writes;
    }

    private void flushStructure() throws IOException {
        if (tableMoved) {
            // not referenced yet: written with the blocks it points to
            ByteBuffer b = ByteBuffer.allocate(Math.toIntExact((long) tableClusters * geo.clusterSize));
            b.asLongBuffer().put(table);
            file.write(b, tableOffset);
        }
        blocks.flush();
        if (tableMoved) {
            headerSwitch.refcountTableMoved(tableOffset, tableClusters);
            file.flush();
            tableMoved = false;
        } else if (dirtyHi >= 0) {
            ByteBuffer b = ByteBuffer.allocate((dirtyHi - dirtyLo + 1) * 8);
            b.asLongBuffer().put(table, dirtyLo, dirtyHi - dirtyLo + 1);
            file.write(b, tableOffset + dirtyLo * 8L);
            file.flush();
        }
        dirtyLo = Integer.MAX_VALUE;
        dirtyHi = -1;
    }

    /**
     * Makes what dropped references durable, then applies the frees to the
     * blocks and writes them; returns the clusters whose refcount reached
     * zero. A free the blocks cannot take (no block, already zero) is a
     * corruption, thrown before anything is written.
     */
    LongList applyFrees() throws IOException {
        LongList freed = new LongList();
        if (deferred.isEmpty()) {
            return freed;
        }
        freeAfter.flush();
        for (int k = 0; k < deferred.size(); k += 2) {
            long first = deferred.get(k);
            long count = deferred.get(k + 1);
            for (long ci = first; ci < first + count; ci++) {
                long bi = ci >>> geo.refblockBits;
                long off = blockOffset(bi);
                if (off == 0) {
                    throw new CorruptImageException("qcow2 refcount table", tableOffset + bi * 8, String.format(
                            "freeing cluster 0x%x that has no refcount block", ci << geo.clusterBits));
                }
                RefcountBlock b = writableBlock(ci);
                int i = (int) (ci & (geo.refblockEntries() - 1));
                long v = entry(b.bytes, i, geo.refcountOrder);
                if (v == 0) {
                    throw new CorruptImageException("qcow2 refcount block", b.hostOffset(), String.format(
                            "refcount of cluster 0x%x would drop below zero", ci << geo.clusterBits));
                }
                setEntry(b.bytes, i, geo.refcountOrder, v - 1);
                blocks.markDirty(b);
                if (v == 1) {
                    freed.add(ci);
                }
            }
        }
        deferred.clear();
        blocks.flush();
        return freed;
    }

    /** Deallocates freed clusters that lie in the file (qemu discards them), runs of adjacent ones at a time. */
    static void punchFreed(Storage storage, LongList freedClusters, int clusterBits) throws IOException {
        long[] f = freedClusters.sorted();
        for (int i = 0; i < f.length; ) {
            int j = i + 1;
            while (j < f.length && f[j] == f[j - 1] + 1) {
                j++;
            }
            long from = f[i] << clusterBits;
            long to = Math.min((f[j - 1] + 1) << clusterBits, storage.size());
            if (to > from) {
                storage.punchHole(from, to - from);
            }
            i = j;
        }
    }

    // ---- entry codecs ----

    /** Host offset of the refcount block a refcount table entry points to (0: none). */
    static long blockOffsetOf(long tableEntry) {
        return tableEntry & TABLE_OFFSET_MASK;
    }

    /**
     * Refcount {@code i} of a block; widths below 8 bits are packed LSB first
     * (qemu get_refcount_ro0..2). The wider ones are assembled by hand: the
     * hot loops of a check run before the JIT has optimised var handles.
     */
    static long entry(byte[] block, int i, int order) {
        return switch (order) {
            case 0 -> (block[i >>> 3] >>> (i & 7)) & 1;
            case 1 -> (block[i >>> 2] >>> ((i & 3) * 2)) & 3;
            case 2 -> (block[i >>> 1] >>> ((i & 1) * 4)) & 15;
            case 3 -> block[i] & 0xff;
            case 4 -> (block[2 * i] & 0xff) << 8 | block[2 * i + 1] & 0xff;
            case 5 -> (long) (block[4 * i] & 0xff) << 24 | (block[4 * i + 1] & 0xff) << 16
                    | (block[4 * i + 2] & 0xff) << 8 | block[4 * i + 3] & 0xff;
            default -> {
                long v = 0;
                for (int k = 8 * i; k < 8 * i + 8; k++) {
                    v = v << 8 | block[k] & 0xff;
                }
                yield v;
            }
        };
    }

    static void setEntry(byte[] block, int i, int order, long v) {
        switch (order) {
            case 0 -> block[i >>> 3] = (byte) ((block[i >>> 3] & ~(1 << (i & 7))) | ((v & 1) << (i & 7)));
            case 1 -> {
                int s = (i & 3) * 2;
                block[i >>> 2] = (byte) ((block[i >>> 2] & ~(3 << s)) | ((v & 3) << s));
            }
            case 2 -> {
                int s = (i & 1) * 4;
                block[i >>> 1] = (byte) ((block[i >>> 1] & ~(15 << s)) | ((v & 15) << s));
            }
            case 3 -> block[i] = (byte) v;
            case 4 -> BE16.set(block, i * 2, (short) v);
            case 5 -> BE32.set(block, i * 4, (int) v);
            default -> BE64.set(block, i * 8, v);
        }
    }
}
