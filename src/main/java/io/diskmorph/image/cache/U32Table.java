package io.diskmorph.image.cache;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * A table of u32 entries in the image file (a VDI block map, a VHD BAT, a
 * Parallels BAT), read in 64 KiB pages through a bounded {@link
 * MetadataCache}: the formats' own readers load it whole (up to 4 GiB). The
 * cache is clipped at the table's end, so the last, partial page never reads
 * or writes what follows it in the file. A changed page is written only
 * after {@code before} is durable (the data its entries map): every change
 * names that dependency again, since the cache forgets it once flushed.
 */
public final class U32Table {
    public static final int PAGE_ENTRIES = 16384;
    private static final int PAGE_BYTES = PAGE_ENTRIES * 4;
    /** 4 MiB of pages: 64 Ki entries each, 1 TiB of guest at 1 MiB blocks. */
    private static final int MAX_PAGES = 64;

    private final long offset;
    private final long entries;
    private final WriteDependency before;
    private final MetadataCache<Page> pages;

    /** One page, decoded to ints (entries past the table's end read as zeros and are never used). */
    private static final class Page extends CachedTable {
        final int[] entries = new int[PAGE_ENTRIES];
        private final ByteOrder order;

        Page(ByteOrder order) {
            this.order = order;
        }

        @Override
        protected void read(ByteBuffer bytes) {
            bytes.order(order).asIntBuffer().get(entries);
        }

        @Override
        protected void write(ByteBuffer bytes) {
            bytes.order(order).asIntBuffer().put(entries);
        }
    }

    /**
     * @param what    the table's name in messages ("VDI block map page")
     * @param offset  where the table starts in the file
     * @param entries how many u32 entries it has
     */
    public U32Table(String what, SyncTracker file, long offset, long entries, ByteOrder order,
                    WriteDependency before) {
        this.offset = offset;
        this.entries = entries;
        this.before = before;
        this.pages = new MetadataCache<>(what, file, PAGE_BYTES, MAX_PAGES, () -> new Page(order));
        pages.clipAt(offset + 4 * entries);
    }

    public long entries() {
        return entries;
    }

    /** Where entry {@code index} lies in the file. */
    public long entryOffset(long index) {
        return offset + 4 * index;
    }

    private Page page(long index) throws IOException {
        return pages.get(offset + index / PAGE_ENTRIES * PAGE_BYTES);
    }

    /** Entry {@code index} (below {@link #entries}), as stored: the caller reads it signed or not. */
    public int get(long index) throws IOException {
        return page(index).entries[(int) (index % PAGE_ENTRIES)];
    }

    /** How many entries from {@code index} on lie in the same page (a run may be answered from one page). */
    public int entriesInPage(long index) {
        return (int) Math.min(PAGE_ENTRIES - index % PAGE_ENTRIES, entries - index);
    }

    public void set(long index, int value) throws IOException {
        Page p = page(index);
        int i = (int) (index % PAGE_ENTRIES);
        if (p.entries[i] != value) {
            p.entries[i] = value;
            pages.markDirty(p);
            pages.dependOn(before);
        }
    }

    /** Writes every changed page in file order, after {@code before}, and syncs. */
    public void flush() throws IOException {
        pages.flush();
    }

    /** Forgets every page (after the file changed under the cache). */
    public void clear() {
        pages.clear();
    }
}
