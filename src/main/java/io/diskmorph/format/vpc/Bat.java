package io.diskmorph.format.vpc;

import io.diskmorph.image.cache.U32Table;
import io.diskmorph.image.cache.SyncTracker;
import io.diskmorph.image.cache.WriteDependency;

import java.io.IOException;
import java.nio.ByteOrder;

/**
 * The Block Allocation Table: one big-endian u32 per block, the sector
 * where the block's bitmap starts (its data follows the bitmap), or
 * 0xffffffff. Read in 64 KiB pages through the shared bounded metadata
 * cache ({@link U32Table}; qemu reads it whole: up to 2 GiB for 512-byte blocks);
 * clipped at the table's end so the last page never touches what follows.
 * A changed page is written only after {@code before} is durable.
 */
final class Bat {
    static final int UNALLOCATED = 0xffffffff;
    static final int PAGE_ENTRIES = U32Table.PAGE_ENTRIES;

    private final U32Table table;

    Bat(SyncTracker file, long batOffset, long entries, WriteDependency before) {
        this.table = new U32Table("VHD BAT page", file, batOffset, entries, ByteOrder.BIG_ENDIAN, before);
    }

    long entries() {
        return table.entries();
    }

    long entryOffset(long block) {
        return table.entryOffset(block);
    }

    /** The entry of block {@code block}; blocks past the table read as unallocated (as in qemu). */
    int get(long block) throws IOException {
        return block >= table.entries() ? UNALLOCATED : table.get(block);
    }

    void set(long block, int value) throws IOException {
        table.set(block, value);
    }

    /** Writes every changed page, after {@code before}, and syncs. */
    void flush() throws IOException {
        table.flush();
    }
}
