package io.diskmorph.image.cache;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.function.Supplier;

/**
 * A bounded cache of fixed-size metadata tables keyed by host offset, the
 * one every driver with tables uses (qemu's block/qcow2-cache.c): qcow2 L2
 * tables and refcount blocks, QED table pages, check's view of refcount
 * blocks.
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
    private final SyncTracker file;
    private final int tableBytes;
    private final int capacity;
    private final Supplier<T> factory;
    private final CachedTable[] tables;
    private final long[] offsets;
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

    /**
     * @param name      what the tables are, for messages ("qcow2 L2 table")
     * @param file      the file the tables are read from and written to
     * @param tableBytes size of one table (or page) in bytes
     * @param capacity  tables kept, at least 2
     * @param factory   makes the (reused) object that holds one table
     */
    public MetadataCache(String name, SyncTracker file, int tableBytes, int capacity, Supplier<T> factory) {
        if (capacity < 2 || tableBytes <= 0) {
            throw new IllegalArgumentException(name + " cache of " + capacity + " tables of " + tableBytes + " bytes");
        }
        this.name = name;
        this.file = file;
        this.tableBytes = tableBytes;
        this.capacity = capacity;
        this.factory = factory;
        this.tables = new CachedTable[capacity];
        this.offsets = new long[capacity];
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

    /** At least half the tables are dirty: a driver that batches its flushes flushes now. */
    public boolean isMostlyDirty() {
        return dirtyCount * 2 >= capacity;
    }

    /** The table at {@code hostOffset}, read on a miss. */
    @SuppressWarnings("unchecked")
    public T get(long hostOffset) throws IOException {
        int s = lastSlot;
        if (s != NONE && offsets[s] == hostOffset) {
            return (T) tables[s];
        }
        s = lookup(hostOffset);
        if (s == NONE) {
            file.storage().read(readBuffer.clear(), hostOffset);
            s = takeSlot(hostOffset);
            tables[s].read(readBuffer.flip());
        }
        touch(s);
        return (T) tables[s];
    }

    /** The table at {@code hostOffset} if it is cached (its place in the LRU order unchanged), else null. */
    @SuppressWarnings("unchecked")
    public T peek(long hostOffset) {
        int s = lastSlot != NONE && offsets[lastSlot] == hostOffset ? lastSlot : lookup(hostOffset);
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
        file.storage().read(runBuffer.clear().limit(bytes), hostOffset);
        int first = lookup(hostOffset);
        if (first != NONE) {
            touch(first); // newest, so the tables read after it cannot evict it
        }
        for (int i = 0; i < count; i++) {
            long at = hostOffset + (long) i * tableBytes;
            if (lookup(at) == NONE) {
                int s = takeSlot(at);
                tables[s].read(runBuffer.limit((i + 1) * tableBytes).position(i * tableBytes));
                touch(s);
            }
        }
        first = lookup(hostOffset);
        touch(first);
        return (T) tables[first];
    }

    /** A table that is not on disk yet (newly allocated): all zeros, dirty. */
    @SuppressWarnings("unchecked")
    public T create(long hostOffset) throws IOException {
        int s = lookup(hostOffset);
        if (s == NONE) {
            s = takeSlot(hostOffset);
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
        if (s == NONE || tables[s] != table || offsets[s] != table.hostOffset) {
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
            long[] order = new long[dirtyCount];
            int n = 0;
            for (int s = 0; s < used; s++) {
                if (dirty[s]) {
                    order[n++] = offsets[s];
                }
            }
            Arrays.sort(order);
            for (long at : order) {
                writeTable(lookup(at));
            }
        }
        file.flush();
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
    private int takeSlot(long hostOffset) throws IOException {
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
        file.write(writeBuffer.clear(), offsets[s]);
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

    private int home(long hostOffset) {
        return (int) ((hostOffset * 0x9E37_79B9_7F4A_7C15L) >>> indexShift);
    }

    private int lookup(long hostOffset) {
        int mask = index.length - 1;
        for (int i = home(hostOffset); ; i = (i + 1) & mask) {
            int e = index[i];
            if (e == 0) {
                return NONE;
            }
            if (offsets[e - 1] == hostOffset) {
                return e - 1;
            }
        }
    }

    private void insertIndex(int s) {
        int mask = index.length - 1;
        int i = home(offsets[s]);
        while (index[i] != 0) {
            i = (i + 1) & mask;
        }
        index[i] = s + 1;
    }

    /** Removes slot {@code s} and shifts back the entries that probed past it (no tombstones). */
    private void unindex(int s) {
        int mask = index.length - 1;
        int hole = home(offsets[s]);
        while (index[hole] != s + 1) {
            hole = (hole + 1) & mask;
        }
        for (int j = (hole + 1) & mask; index[j] != 0; j = (j + 1) & mask) {
            int h = home(offsets[index[j] - 1]);
            boolean staysAfterHole = hole <= j ? h > hole && h <= j : h > hole || h <= j;
            if (!staysAfterHole) {
                index[hole] = index[j];
                hole = j;
            }
        }
        index[hole] = 0;
    }
}
