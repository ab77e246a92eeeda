package io.diskmorph.format.vdi;

import io.diskmorph.image.cache.CachedTable;
import io.diskmorph.image.cache.MetadataCache;
import io.diskmorph.image.cache.SyncTracker;
import io.diskmorph.image.cache.WriteDependency;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * The VDI block map (one u32 per guest block) read in pages of 64 KiB
 * through the shared bounded {@link MetadataCache}, so memory does not
 * grow with the disk: qemu reads the whole map at open, up to 4 GiB for the
 * largest map the format allows. The cache is clipped at the end of the
 * map, so the last, partial page never reads or writes the data area
 * behind it (in a qemu-made image the first guest block follows the map
 * within the same 64 KiB). A dirty page is written only after
 * {@code before} is durable (the data it maps and the header that counts
 * it): every change registers it as the cache's write dependency.
 */
final class BlockMap {
    static final int UNALLOCATED = 0xffffffff;
    /** A discarded block: reads as zeros (qemu's VDI_DISCARDED). */
    static final int DISCARDED = 0xfffffffe;
    static final int PAGE_ENTRIES = 16384;
    private static final int PAGE_BYTES = PAGE_ENTRIES * 4;
    /** 4 MiB of pages, 1 TiB of guest: an 8 TiB map runs in a 16 MiB heap. */
    private static final int MAX_PAGES = 64;

    private final long mapOffset;
    private final long blocks;
    private final WriteDependency before;
    private final MetadataCache<Page> pages;

    /** One 64 KiB page of the map, decoded to ints (entries past the map's end read as zeros, never used). */
    private static final class Page extends CachedTable {
        final int[] entries = new int[PAGE_ENTRIES];

        @Override
        protected void read(ByteBuffer bytes) {
            bytes.order(ByteOrder.LITTLE_ENDIAN).asIntBuffer().get(entries);
        }

        @Override
        protected void write(ByteBuffer bytes) {
            bytes.order(ByteOrder.LITTLE_ENDIAN).asIntBuffer().put(entries);
        }
    }

    BlockMap(SyncTracker file, long mapOffset, long blocks, WriteDependency before) {
        this.mapOffset = mapOffset;
        this.blocks = blocks;
        this.before = before;
        this.pages = new MetadataCache<>("VDI block map page", file, PAGE_BYTES, MAX_PAGES, Page::new);
        pages.clipAt(mapOffset + 4 * blocks);
    }

    static boolean isAllocated(int entry) {
        return Integer.compareUnsigned(entry, DISCARDED) < 0;
    }

    long blocks() {
        return blocks;
    }

    private Page page(long block) throws IOException {
        return pages.get(mapOffset + block / PAGE_ENTRIES * PAGE_BYTES);
    }

    /** The entry of guest block {@code block}. */
    int get(long block) throws IOException {
        return page(block).entries[(int) (block % PAGE_ENTRIES)];
    }

    /** How many entries from {@code block} on lie in the same page (a run may be answered from one page). */
    int entriesInPage(long block) {
        return (int) Math.min(PAGE_ENTRIES - block % PAGE_ENTRIES, blocks - block);
    }

    void set(long block, int value) throws IOException {
        Page p = page(block);
        int i = (int) (block % PAGE_ENTRIES);
        if (p.entries[i] != value) {
            p.entries[i] = value;
            pages.markDirty(p);
            // the cache forgets a dependency once flushed: each change names it again
            pages.dependOn(before);
        }
    }

    /** Writes every dirty page in file order, after {@code before}, and syncs. */
    void flush() throws IOException {
        pages.flush();
    }
}
