package io.diskmorph.format.qcow2;

import io.diskmorph.storage.Storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.LongBuffer;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * LRU cache of L2 tables, decoded to longs (an extended L2 entry is two
 * words: descriptor, subcluster bitmap). Bounded by a byte budget; dirty
 * tables are never evicted, the owner flushes when {@link #overCapacity()}.
 * Adjacent tables are read in one request when the L1 lists them in a row.
 */
final class L2Cache {
    private static final long CACHE_BYTES = 8L << 20;
    /** Largest single read when loading several adjacent tables. */
    private static final long READAHEAD_BYTES = 1L << 20;

    /** One L2 table. */
    static final class Table {
        final long offset;
        final long[] words;
        boolean dirty;
        /** Verified private to the active L1 (refcount 1) in this session. */
        boolean writable;

        Table(long offset, long[] words) {
            this.offset = offset;
            this.words = words;
        }
    }

    private final Storage storage;
    private final Qcow2Geometry geo;
    private final int capacity;
    private final LinkedHashMap<Long, Table> tables = new LinkedHashMap<>(64, 0.75f, true);
    private Table last;
    /** Read buffer reused by {@link #load} (one walk over a big image reads thousands of tables). */
    private ByteBuffer scratch;

    L2Cache(Storage storage, Qcow2Geometry geo) {
        this.storage = storage;
        this.geo = geo;
        this.capacity = (int) Math.max(4, CACHE_BYTES / geo.clusterSize);
    }

    /** Largest number of adjacent tables worth reading at once. */
    int readaheadTables() {
        return (int) Math.max(1, Math.min(capacity / 2, READAHEAD_BYTES / geo.clusterSize));
    }

    /** The cached table at {@code offset}, or null. */
    Table cached(long offset) {
        Table t = last;
        if (t != null && t.offset == offset) {
            return t;
        }
        t = tables.get(offset);
        if (t != null) {
            last = t;
        }
        return t;
    }

    /**
     * Reads {@code count} adjacent tables starting at {@code offset} in one
     * request and returns the first. Tables already cached keep their cached
     * (possibly dirty) content.
     */
    Table load(long offset, int count) throws IOException {
        int words = (int) (geo.clusterSize / 8);
        int bytes = Math.toIntExact(count * geo.clusterSize);
        if (scratch == null || scratch.capacity() < bytes) {
            scratch = ByteBuffer.allocate(bytes);
        }
        storage.read(scratch.clear().limit(bytes), offset);
        LongBuffer raw = scratch.flip().asLongBuffer();
        Table first = null;
        for (int i = 0; i < count; i++) {
            long off = offset + i * geo.clusterSize;
            Table t = tables.get(off);
            if (t == null) {
                long[] w = new long[words];
                raw.get(i * words, w);
                t = new Table(off, w);
                evict(capacity - 1);
                tables.put(off, t);
            }
            if (first == null) {
                first = t;
                last = t; // never evicted by the rest of this batch
            }
        }
        tables.get(offset); // most recently used
        return first;
    }

    /** Adds a table that does not exist in the file yet (new or copied); it is dirty. */
    Table add(long offset, long[] words) {
        Table t = new Table(offset, words);
        t.dirty = true;
        evict(capacity - 1);
        tables.put(offset, t);
        last = t;
        return t;
    }

    private void evict(int target) {
        if (tables.size() <= target) {
            return;
        }
        for (Iterator<Map.Entry<Long, Table>> it = tables.entrySet().iterator();
             it.hasNext() && tables.size() > target; ) {
            Table t = it.next().getValue();
            if (!t.dirty && t != last) {
                it.remove();
            }
        }
    }

    /** Forgets every table (the file changed underneath, e.g. by a check repair); none may be dirty. */
    void clear() {
        tables.clear();
        last = null;
    }

    boolean overCapacity() {
        return tables.size() > capacity;
    }

    boolean hasDirty() {
        for (Table t : tables.values()) {
            if (t.dirty) {
                return true;
            }
        }
        return false;
    }

    /** Writes every dirty table in file order. */
    void writeDirty() throws IOException {
        List<Table> dirty = new ArrayList<>();
        for (Table t : tables.values()) {
            if (t.dirty) {
                dirty.add(t);
            }
        }
        dirty.sort((a, b) -> Long.compare(a.offset, b.offset));
        ByteBuffer buf = ByteBuffer.allocate((int) geo.clusterSize);
        for (Table t : dirty) {
            buf.clear();
            buf.asLongBuffer().put(t.words);
            storage.write(buf, t.offset);
            t.dirty = false;
        }
        evict(capacity);
    }
}
