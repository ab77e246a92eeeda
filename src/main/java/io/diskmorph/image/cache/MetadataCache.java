package io.diskmorph.image.cache;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.function.Supplier;

/**
 * A bounded cache of fixed-size metadata tables keyed by host offset, the
 * one every driver with tables uses (qemu's block/qcow2-cache.c): qcow2 L2
 * tables and refcount blocks, QED table pages, check's view of refcount
 * blocks, VMDK grain directory pages and grain tables, VHDX BAT pages, VDI
 * block map pages. A driver whose
 * tables live in several files (a VMDK's extents) keys them by file and
 * host offset: {@link #addFile} numbers the files, and one bound covers
 * them all.
 *
 * <p>Memory is {@code capacity} tables whatever the image size. Lookups go
 * through a hash index of offsets and an LRU list kept in arrays, and the
 * table objects are reused, so neither a hit nor a miss allocates. The
 * least recently used table is evicted; a dirty one is written back first,
 * after its dependencies. The last {@code capacity} distinct tables returned
 * stay cached: a table a driver holds survives one more {@link #get} or
 * {@link #create} on the same cache (every cache has room for two at least).
 *
 * <p>Write ordering is data, as qcow2_cache_set_dependency and
 * qcow2_cache_depends_on_flush make it: {@link #dependOn} names what must be
 * durable before any table of this cache is written (the refcount blocks of
 * newly allocated clusters, guest data, a table an entry now points to).
 * The dependencies are flushed first, whether the cache writes because it
 * is flushed or because it evicts, and then forgotten.
 *
 * <p>One thread at a time; a dependency's flush must not read this cache.
 */
public final class MetadataCache<T extends CachedTable> implements WriteDependency {
    private static final int NONE = -1;

    private final String name;
    /** The files tables are read from and written to, by number ({@link #addFile}). */
    private SyncTracker[] files;
    private int fileCount;
    private final int tableBytes;
    private final int capacity;
    private final Supplier<T> factory;
    private final CachedTable[] tables;
    private final long[] offsets;
    /** The file number of each slot's table. */
    private final int[] fileOf;
    private final boolean[] dirty;
    /** LRU list: the slot used just after / before each slot ({@link #NONE} at the ends). */
    private final int[] newer;
    private final int[] older;
    private int newest = NONE;
    private int oldest = NONE;
    private int used;
    private int dirtyCount;
    /** Open addressing over {@link #offsets}: slot + 1, 0 for an empty place. */
    private final int[] index;
    private final int indexShift;
    /** The slot the last lookup returned (always {@link #newest}): runs of lookups in one table. */
    private int lastSlot = NONE;
    private final Dependencies before = new Dependencies();
    private final ByteBuffer readBuffer;
    /** Made on the first write: a read-only cache (a reader's, check's) never needs it. */
    private ByteBuffer writeBuffer;
    private ByteBuffer runBuffer;
    private ByteBuffer zeros;
    /** Where the tables' region ends ({@link #clipAt}): no byte at or past it is read or written. */
    private long regionEnd = Long.MAX_VALUE;

    /**
     * @param name      what the tables are, for messages ("qcow2 L2 table")
     * @param file      the file the tables are read from and written to
     * @param tableBytes size of one table (or page) in bytes
     * @param capacity  tables kept, at least 2
     * @param factory   makes the (reused) object that holds one table
     */
    public MetadataCache(String name, SyncTracker file, int tableBytes, int capacity, Supplier<T> factory) {
        this(name, tableBytes, capacity, factory);
        addFile(file);
    }

    /**
     * A cache of tables from several files, each added with {@link #addFile}
     * and named by its number in the calls that take one; the calls without
     * a file number use file 0.
     */
    public MetadataCache(String name, int tableBytes, int capacity, Supplier<T> factory) {
        if (capacity < 2 || tableBytes <= 0) {
            throw new IllegalArgumentException(name + " cache of " + capacity + " tables of " + tableBytes + " bytes");
        }
        this.name = name;
        this.files = new SyncTracker[1];
        this.tableBytes = tableBytes;
        this.capacity = capacity;
        this.factory = factory;
        this.tables = new CachedTable[capacity];
        this.offsets = new long[capacity];
        this.fileOf = new int[capacity];
        this.dirty = new boolean[capacity];
        this.newer = new int[capacity];
        this.older = new int[capacity];
        int bits = 32 - Integer.numberOfLeadingZeros(capacity * 2 - 1);
        this.index = new int[1 << bits];
        this.indexShift = 64 - bits;
        this.readBuffer = ByteBuffer.allocate(tableBytes);
    }

    public int capacity() {
        return capacity;
    }

    /** Adds a file whose tables this cache holds; returns its number. */
    public int addFile(SyncTracker file) {
        if (fileCount == files.length) {
            files = Arrays.copyOf(files, fileCount * 2);
        }
        files[fileCount] = file;
        return fileCount++;
    }

    /**
     * The tables end at host offset {@code end}: a table (page) that
     * reaches past it is read and written only up to it, and its bytes past
     * it read as zeros. For pages of a table whose last page is partial and
     * followed by other data (VDI's block map, with guest blocks right
     * after it), which a whole-page write would overwrite.
     */
    public void clipAt(long end) {
        this.regionEnd = end;
    }

    /** How many bytes of the table at {@code hostOffset} lie before the region's end. */
    private int bytesInRegion(long hostOffset, int bytes) {
        return (int) Math.max(0, Math.min(bytes, regionEnd - hostOffset));
    }

    /** Reads {@code buf}'s remaining bytes at {@code hostOffset} up to the region's end; zeros past it. */
    private void readClipped(int file, ByteBuffer buf, long hostOffset) throws IOException {
        int want = buf.remaining();
        int n = bytesInRegion(hostOffset, want);
        int start = buf.position();
        files[file].storage().read(buf.limit(start + n), hostOffset);
        if (n < want) {
            Arrays.fill(buf.array(), buf.arrayOffset() + start + n, buf.arrayOffset() + start + want, (byte) 0);
            buf.limit(start + want).position(start + want);
        }
    }

    /** The size of one table in bytes. */
    public int tableBytes() {
        return tableBytes;
    }

    /** At least half the tables are dirty: a driver that batches its flushes flushes now. */
    public boolean isMostlyDirty() {
        return dirtyCount * 2 >= capacity;
    }

    /** The table at {@code hostOffset}, read on a miss. */
    public T get(long hostOffset) throws IOException {
        return get(0, hostOffset);
    }

    /** The table at {@code hostOffset} of file number {@code file}, read on a miss. */
    @SuppressWarnings("unchecked")
    public T get(int file, long hostOffset) throws IOException {
        int s = lastSlot;
        if (s != NONE && offsets[s] == hostOffset && fileOf[s] == file) {
            return (T) tables[s];
        }
        s = lookup(file, hostOffset);
        if (s == NONE) {
            readClipped(file, readBuffer.clear(), hostOffset);
            s = takeSlot(file, hostOffset);
            tables[s].read(readBuffer.flip());
        }
        touch(s);
        return (T) tables[s];
    }

    /** The table at {@code hostOffset} if it is cached (its place in the LRU order unchanged), else null. */
    public T peek(long hostOffset) {
        return peek(0, hostOffset);
    }

    /** The same in file number {@code file}. */
    @SuppressWarnings("unchecked")
    public T peek(int file, long hostOffset) {
        int s = lastSlot != NONE && offsets[lastSlot] == hostOffset && fileOf[lastSlot] == file ? lastSlot
                : lookup(file, hostOffset);
        return s == NONE ? null : (T) tables[s];
    }

    /**
     * Reads {@code count} adjacent tables from {@code hostOffset} in one
     * request (at most half the capacity) and returns the first; tables
     * already cached keep their cached, possibly dirty, content.
     */
    @SuppressWarnings("unchecked")
    public T getRun(long hostOffset, int count) throws IOException {
        if (count <= 1) {
            return get(hostOffset);
        }
        if (count > capacity / 2) {
            throw new IllegalArgumentException("read-ahead of " + count + " " + name + "s in a cache of " + capacity);
        }
        int bytes = count * tableBytes;
        if (runBuffer == null || runBuffer.capacity() < bytes) {
            runBuffer = ByteBuffer.allocate(bytes);
        }
        readClipped(0, runBuffer.clear().limit(bytes), hostOffset);
        int first = lookup(0, hostOffset);
        if (first != NONE) {
            touch(first); // newest, so the tables read after it cannot evict it
        }
        for (int i = 0; i < count; i++) {
            long at = hostOffset + (long) i * tableBytes;
            if (lookup(0, at) == NONE) {
                int s = takeSlot(0, at);
                tables[s].read(runBuffer.limit((i + 1) * tableBytes).position(i * tableBytes));
                touch(s);
            }
        }
        first = lookup(0, hostOffset);
        touch(first);
        return (T) tables[first];
    }

    /** A table that is not on disk yet (newly allocated): all zeros, dirty. */
    public T create(long hostOffset) throws IOException {
        return create(0, hostOffset);
    }

    /** The same in file number {@code file}. */
    @SuppressWarnings("unchecked")
    public T create(int file, long hostOffset) throws IOException {
        int s = lookup(file, hostOffset);
        if (s == NONE) {
            s = takeSlot(file, hostOffset);
        }
        if (zeros == null) {
            zeros = ByteBuffer.allocate(tableBytes);
        }
        tables[s].read(zeros.clear());
        setDirty(s);
        touch(s);
        return (T) tables[s];
    }

    /** The driver changed {@code table}: it is written back before it leaves the cache. */
    public void markDirty(T table) {
        int s = table.slot;
        if (s == NONE || s >= used || tables[s] != table || offsets[s] != table.hostOffset) {
            throw new IllegalStateException(name + " at 0x" + Long.toHexString(table.hostOffset) + " is not cached");
        }
        setDirty(s);
    }

    private void setDirty(int s) {
        if (!dirty[s]) {
            dirty[s] = true;
            dirtyCount++;
        }
    }

    /** {@code before} is flushed before any table of this cache is written. */
    public void dependOn(WriteDependency before) {
        this.before.add(before);
    }

    /** Writes every dirty table in file order, after the dependencies, and makes them durable. */
    @Override
    public void flush() throws IOException {
        before.flush();
        if (dirtyCount > 0) {
            Integer[] order = new Integer[dirtyCount];
            int n = 0;
            for (int s = 0; s < used; s++) {
                if (dirty[s]) {
                    order[n++] = s;
                }
            }
            Arrays.sort(order, (x, y) -> fileOf[x] != fileOf[y] ? Integer.compare(fileOf[x], fileOf[y])
                    : Long.compare(offsets[x], offsets[y]));
            for (int s : order) {
                writeTable(s);
            }
        }
        for (int f = 0; f < fileCount; f++) {
            files[f].flush();
        }
    }

    /** Forgets every table (the file changed underneath, as after a check repair); none may be dirty. */
    public void clear() {
        if (dirtyCount > 0) {
            throw new IllegalStateException("dropping " + dirtyCount + " dirty " + name + "s");
        }
        Arrays.fill(index, 0);
        for (int s = 0; s < used; s++) {
            tables[s].slot = NONE;
        }
        used = 0;
        newest = NONE;
        oldest = NONE;
        lastSlot = NONE;
        before.clear();
    }

    // ---- slots ----

    /** A slot for a table at {@code hostOffset}: a free one, or the least recently used one, written back if dirty. */
    private int takeSlot(int file, long hostOffset) throws IOException {
        int s;
        if (used < capacity) {
            s = used++;
            if (tables[s] == null) {
                tables[s] = factory.get();
            }
        } else {
            s = oldest;
            if (dirty[s]) {
                before.flush();
                writeTable(s);
            }
            unindex(s);
            unlink(s);
            if (lastSlot == s) {
                lastSlot = NONE;
            }
        }
        offsets[s] = hostOffset;
        fileOf[s] = file;
        tables[s].hostOffset = hostOffset;
        tables[s].slot = s;
        insertIndex(s);
        linkNewest(s);
        return s;
    }

    private void writeTable(int s) throws IOException {
        if (writeBuffer == null) {
            writeBuffer = ByteBuffer.allocate(tableBytes);
        }
        tables[s].write(writeBuffer.clear());
        files[fileOf[s]].write(writeBuffer.clear().limit(bytesInRegion(offsets[s], tableBytes)), offsets[s]);
        dirty[s] = false;
        dirtyCount--;
    }

    private void touch(int s) {
        if (s != newest) {
            unlink(s);
            linkNewest(s);
        }
        lastSlot = s;
    }

    private void unlink(int s) {
        int n = newer[s];
        int o = older[s];
        if (n != NONE) {
            older[n] = o;
        } else {
            newest = o;
        }
        if (o != NONE) {
            newer[o] = n;
        } else {
            oldest = n;
        }
    }

    private void linkNewest(int s) {
        newer[s] = NONE;
        older[s] = newest;
        if (newest != NONE) {
            newer[newest] = s;
        } else {
            oldest = s;
        }
        newest = s;
    }

    // ---- hash index ----

    private int home(int file, long hostOffset) {
        return (int) (((hostOffset + file * 0xC2B2_AE3D_27D4_EB4FL) * 0x9E37_79B9_7F4A_7C15L) >>> indexShift);
    }

    private int lookup(int file, long hostOffset) {
        int mask = index.length - 1;
        for (int i = home(file, hostOffset); ; i = (i + 1) & mask) {
            int e = index[i];
            if (e == 0) {
                return NONE;
            }
            if (offsets[e - 1] == hostOffset && fileOf[e - 1] == file) {
                return e - 1;
            }
        }
    }

    private void insertIndex(int s) {
        int mask = index.length - 1;
        int i = home(fileOf[s], offsets[s]);
        while (index[i] != 0) {
            i = (i + 1) & mask;
        }
        index[i] = s + 1;
    }

    /** Removes slot {@code s} and shifts back the entries that probed past it (no tombstones). */
    private void unindex(int s) {
        int mask = index.length - 1;
        int hole = home(fileOf[s], offsets[s]);
        while (index[hole] != s + 1) {
            hole = (hole + 1) & mask;
        }
        for (int j = (hole + 1) & mask; index[j] != 0; j = (j + 1) & mask) {
            int h = home(fileOf[index[j] - 1], offsets[index[j] - 1]);
            boolean staysAfterHole = hole <= j ? h > hole && h <= j : h > hole || h <= j;
            if (!staysAfterHole) {
                index[hole] = index[j];
                hole = j;
            }
        }
        index[hole] = 0;
    }
}
