package io.diskmorph.format.vpc;

import io.diskmorph.image.cache.CachedTable;
import io.diskmorph.image.cache.MetadataCache;
import io.diskmorph.image.cache.SyncTracker;
import io.diskmorph.image.cache.WriteDependency;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * The Block Allocation Table: one big-endian u32 per block, the sector
 * where the block's bitmap starts (its data follows the bitmap), or
 * 0xffffffff. Read in 64 KiB pages through the shared bounded {@link
 * MetadataCache} (qemu reads it whole: up to 2 GiB for 512-byte blocks);
 * clipped at the table's end so the last page never touches what follows.
 * A changed page is written only after {@code before} is durable.
 */
final class Bat {
    static final int UNALLOCATED = 0xffffffff;
    static final int PAGE_ENTRIES = 16384;
    private static final int PAGE_BYTES = PAGE_ENTRIES * 4;
    private static final int MAX_PAGES = 64;

    private final long batOffset;
    private final long entries;
    private final WriteDependency before;
    private final MetadataCache<Page> pages;

    private static final class Page extends CachedTable {
        final int[] entries = new int[PAGE_ENTRIES];

        @Override
        protected void read(ByteBuffer bytes) {
            bytes.order(ByteOrder.BIG_ENDIAN).asIntBuffer().get(entries);
        }

        @Override
        protected void write(ByteBuffer bytes) {
            bytes.order(ByteOrder.BIG_ENDIAN).asIntBuffer().put(entries);
        }
    }

    Bat(SyncTracker file, long batOffset, long entries, WriteDependency before) {
        this.batOffset = batOffset;
        this.entries = entries;
        this.before = before;
        this.pages = new MetadataCache<>("VHD BAT page", file, PAGE_BYTES, MAX_PAGES, Page::new);
        pages.clipAt(batOffset + 4 * entries);
    }

    long entries() {
        return entries;
    }

    long entryOffset(long block) {
        return batOffset + 4 * block;
    }

    private Page page(long block) throws IOException {
        return pages.get(batOffset + block / PAGE_ENTRIES * PAGE_BYTES);
    }

    /** The entry of block {@code block}; blocks past the table read as unallocated (as in qemu). */
    int get(long block) throws IOException {
        if (block >= entries) {
            return UNALLOCATED;
        }
        return page(block).entries[(int) (block % PAGE_ENTRIES)];
    }

    void set(long block, int value) throws IOException {
        Page p = page(block);
        int i = (int) (block % PAGE_ENTRIES);
        if (p.entries[i] != value) {
            p.entries[i] = value;
            pages.markDirty(p);
            pages.dependOn(before);
        }
    }

    /** Writes every changed page, after {@code before}, and syncs. */
    void flush() throws IOException {
        pages.flush();
    }
}
