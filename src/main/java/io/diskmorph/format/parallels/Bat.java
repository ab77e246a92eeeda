package io.diskmorph.format.parallels;

import io.diskmorph.image.cache.CachedTable;
import io.diskmorph.image.cache.MetadataCache;
import io.diskmorph.image.cache.SyncTracker;
import io.diskmorph.image.cache.WriteDependency;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * The block allocation table (one u32 per guest cluster, 0 for
 * unallocated, right after the 64-byte header), read in pages of 64 KiB
 * through the shared bounded {@link MetadataCache}: qemu reads it whole at
 * open, up to 2 GiB. The cache is clipped at the BAT's end, so the last,
 * partial page never reads or writes the data behind it. A dirty page is
 * written only after {@code before} (the data it maps) is durable.
 */
final class Bat {
    static final int PAGE_ENTRIES = 16384;
    private static final int PAGE_BYTES = PAGE_ENTRIES * 4;
    /** 4 MiB of pages. */
    private static final int MAX_PAGES = 64;

    private final long entries;
    private final WriteDependency before;
    private final MetadataCache<Page> pages;

    /** One 64 KiB page, decoded to ints (entries past the BAT's end read as zeros, never used). */
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

    Bat(SyncTracker file, long entries, WriteDependency before) {
        this.entries = entries;
        this.before = before;
        this.pages = new MetadataCache<>("Parallels BAT page", file, PAGE_BYTES, MAX_PAGES, Page::new);
        pages.clipAt(ParallelsHeader.BYTES + 4 * entries);
    }

    long entries() {
        return entries;
    }

    private Page page(long index) throws IOException {
        return pages.get(ParallelsHeader.BYTES + index / PAGE_ENTRIES * PAGE_BYTES);
    }

    /** The entry of guest cluster {@code index} (unsigned). */
    long get(long index) throws IOException {
        return Integer.toUnsignedLong(page(index).entries[(int) (index % PAGE_ENTRIES)]);
    }

    /** How many entries from {@code index} on lie in the same page. */
    int entriesInPage(long index) {
        return (int) Math.min(PAGE_ENTRIES - index % PAGE_ENTRIES, entries - index);
    }

    void set(long index, long value) throws IOException {
        Page p = page(index);
        int i = (int) (index % PAGE_ENTRIES);
        if (p.entries[i] != (int) value) {
            p.entries[i] = (int) value;
            pages.markDirty(p);
            // the cache forgets a dependency once flushed: each change names it again
            pages.dependOn(before);
        }
    }

    /** Writes every dirty page in file order, after {@code before}, and syncs. */
    void flush() throws IOException {
        pages.flush();
    }

    /** Forgets every page (after the file changed under the cache). */
    void clear() {
        pages.clear();
    }
}
