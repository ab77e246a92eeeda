package io.diskmorph.format.qed;

import io.diskmorph.storage.Storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.function.LongPredicate;

/**
 * A bounded LRU cache of QED table entries (L1 and L2), in pages of at most
 * 64 KiB, so memory does not depend on the table size (a table can be up to
 * 16 x 64 MiB) nor on the image size. Writes are cached (dirty pages) until
 * the owner writes them back in crash-safe order; evicting a dirty page
 * first asks the owner to flush.
 */
final class TableCache {
    static final int MAX_PAGE_BYTES = 64 * 1024;

    /** Called when a dirty page would have to be evicted: must write back every dirty page. */
    interface Flusher {
        void flushMetadata() throws IOException;
    }

    private static final class Page {
        final long offset;
        final long[] entries;
        boolean dirty;

        Page(long offset, long[] entries) {
            this.offset = offset;
            this.entries = entries;
        }
    }

    private final Storage storage;
    private final int pageBytes;
    private final int maxPages;
    private final Flusher flusher;
    private final LinkedHashMap<Long, Page> pages = new LinkedHashMap<>(64, 0.75f, true);
    private Page last; // fast path for runs of lookups in one page
    private int dirtyPages;

    TableCache(Storage storage, long tableBytes, long capacityBytes, Flusher flusher) {
        this.storage = storage;
        this.pageBytes = (int) Math.min(tableBytes, MAX_PAGE_BYTES);
        this.maxPages = (int) Math.max(4, capacityBytes / pageBytes);
        this.flusher = flusher;
    }

    long get(long tableOffset, long index) throws IOException {
        Page p = page(tableOffset, index);
        return p.entries[inPage(index)];
    }

    void set(long tableOffset, long index, long value) throws IOException {
        Page p = page(tableOffset, index);
        int i = inPage(index);
        if (p.entries[i] != value) {
            p.entries[i] = value;
            if (!p.dirty) {
                p.dirty = true;
                dirtyPages++;
            }
        }
    }

    boolean hasDirty() {
        return dirtyPages > 0;
    }

    /** Writes the dirty pages whose offset matches, in file order, and marks them clean (no sync). */
    void writeDirty(LongPredicate which) throws IOException {
        if (dirtyPages == 0) {
            return;
        }
        List<Page> todo = new ArrayList<>();
        for (Page p : pages.values()) {
            if (p.dirty && which.test(p.offset)) {
                todo.add(p);
            }
        }
        todo.sort((a, b) -> Long.compare(a.offset, b.offset));
        ByteBuffer buf = ByteBuffer.allocate(pageBytes).order(ByteOrder.LITTLE_ENDIAN);
        for (Page p : todo) {
            buf.clear();
            buf.asLongBuffer().put(p.entries);
            storage.write(buf, p.offset);
            p.dirty = false;
            dirtyPages--;
        }
    }

    /** Forgets every page (after the tables were changed on disk behind the cache). */
    void clear() {
        if (dirtyPages > 0) {
            throw new IllegalStateException("dropping dirty QED table pages");
        }
        pages.clear();
        last = null;
    }

    private int inPage(long index) {
        return (int) (index % (pageBytes / 8));
    }

    private Page page(long tableOffset, long index) throws IOException {
        long offset = tableOffset + index * 8 / pageBytes * pageBytes;
        if (last != null && last.offset == offset) {
            return last;
        }
        Page p = pages.get(offset);
        if (p == null) {
            makeRoom();
            ByteBuffer b = storage.readBytes(offset, pageBytes).order(ByteOrder.LITTLE_ENDIAN);
            long[] entries = new long[pageBytes / 8];
            b.asLongBuffer().get(entries);
            p = new Page(offset, entries);
            pages.put(offset, p);
        }
        last = p;
        return p;
    }

    private void makeRoom() throws IOException {
        if (pages.size() < maxPages) {
            return;
        }
        if (!evictOneClean()) {
            flusher.flushMetadata();
            evictOneClean();
        }
    }

    private boolean evictOneClean() {
        for (Iterator<Page> it = pages.values().iterator(); it.hasNext(); ) {
            Page p = it.next();
            if (!p.dirty) {
                it.remove();
                if (p == last) {
                    last = null;
                }
                return true;
            }
        }
        return false;
    }
}
