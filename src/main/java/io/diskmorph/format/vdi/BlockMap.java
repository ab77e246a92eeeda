package io.diskmorph.format.vdi;

import io.diskmorph.image.cache.SyncTracker;
import io.diskmorph.image.cache.WriteDependency;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The VDI block map (one u32 per guest block) read in pages of 64 KiB
 * through a bounded LRU cache, so memory does not grow with the disk: qemu
 * reads the whole map at open, up to 4 GiB for the largest map the format
 * allows. Pages never reach past the map, and only the changed entries of
 * a page are written back, so the data area behind the map is never
 * touched. A dirty page is written only after {@code before} is durable
 * (the data it maps and the header that counts it).
 */
final class BlockMap {
    static final int UNALLOCATED = 0xffffffff;
    /** A discarded block: reads as zeros (qemu's VDI_DISCARDED). */
    static final int DISCARDED = 0xfffffffe;
    static final int PAGE_ENTRIES = 16384;
    private static final int MAX_PAGES = 64;

    private final SyncTracker file;
    private final long mapOffset;
    private final long blocks;
    private final WriteDependency before;
    private final Map<Long, Page> pages = new LinkedHashMap<>(16, 0.75f, true);

    private static final class Page {
        final long index;
        final int[] entries;
        /** Dirty entries [dirtyFrom, dirtyTo) of this page; empty when dirtyFrom >= dirtyTo. */
        int dirtyFrom = Integer.MAX_VALUE;
        int dirtyTo;

        Page(long index, int n) {
            this.index = index;
            this.entries = new int[n];
        }

        boolean dirty() {
            return dirtyFrom < dirtyTo;
        }
    }

    BlockMap(SyncTracker file, long mapOffset, long blocks, WriteDependency before) {
        this.file = file;
        this.mapOffset = mapOffset;
        this.blocks = blocks;
        this.before = before;
    }

    static boolean isAllocated(int entry) {
        return Integer.compareUnsigned(entry, DISCARDED) < 0;
    }

    long blocks() {
        return blocks;
    }

    /** The entry of guest block {@code block}. */
    int get(long block) throws IOException {
        return page(block / PAGE_ENTRIES).entries[(int) (block % PAGE_ENTRIES)];
    }

    /** How many entries from {@code block} on lie in the same page (a run may be answered from one page). */
    int entriesInPage(long block) {
        return (int) Math.min(PAGE_ENTRIES - block % PAGE_ENTRIES, blocks - block);
    }

    void set(long block, int value) throws IOException {
        Page p = page(block / PAGE_ENTRIES);
        int i = (int) (block % PAGE_ENTRIES);
        if (p.entries[i] != value) {
            p.entries[i] = value;
            p.dirtyFrom = Math.min(p.dirtyFrom, i);
            p.dirtyTo = Math.max(p.dirtyTo, i + 1);
        }
    }

    private Page page(long index) throws IOException {
        Page p = pages.get(index);
        if (p != null) {
            return p;
        }
        if (pages.size() >= MAX_PAGES) {
            Iterator<Page> eldest = pages.values().iterator();
            Page victim = eldest.next();
            if (victim.dirty()) {
                before.flush();
                writeBack(victim);
                file.flush();
            }
            eldest.remove();
        }
        long first = index * PAGE_ENTRIES;
        int n = (int) Math.min(PAGE_ENTRIES, blocks - first);
        p = new Page(index, n);
        ByteBuffer b = file.storage().readBytes(mapOffset + first * 4, n * 4).order(ByteOrder.LITTLE_ENDIAN);
        b.asIntBuffer().get(p.entries);
        pages.put(index, p);
        return p;
    }

    private void writeBack(Page p) throws IOException {
        int n = p.dirtyTo - p.dirtyFrom;
        ByteBuffer b = ByteBuffer.allocate(n * 4).order(ByteOrder.LITTLE_ENDIAN);
        b.asIntBuffer().put(p.entries, p.dirtyFrom, n);
        file.write(b, mapOffset + (p.index * PAGE_ENTRIES + p.dirtyFrom) * 4);
        p.dirtyFrom = Integer.MAX_VALUE;
        p.dirtyTo = 0;
    }

    boolean hasDirtyPages() {
        for (Page p : pages.values()) {
            if (p.dirty()) {
                return true;
            }
        }
        return false;
    }

    /** Writes every dirty page in file order, after {@code before}, and syncs. */
    void flush() throws IOException {
        if (!hasDirtyPages()) {
            return;
        }
        before.flush();
        List<Page> dirty = new ArrayList<>();
        for (Page p : pages.values()) {
            if (p.dirty()) {
                dirty.add(p);
            }
        }
        dirty.sort((a, b) -> Long.compare(a.index, b.index));
        for (Page p : dirty) {
            writeBack(p);
        }
        file.flush();
    }

    /** Forgets every page (none may be dirty). */
    void clear() {
        pages.clear();
    }
}
