package io.diskmorph.format.parallels;

import io.diskmorph.image.cache.U32Table;
import io.diskmorph.image.cache.SyncTracker;
import io.diskmorph.image.cache.WriteDependency;

import java.io.IOException;
import java.nio.ByteOrder;

/**
 * The block allocation table (one u32 per guest cluster, 0 for
 * unallocated, right after the 64-byte header), read in pages of 64 KiB
 * through the shared bounded metadata cache ({@link U32Table}): qemu reads it whole at
 * open, up to 2 GiB. The cache is clipped at the BAT's end, so the last,
 * partial page never reads or writes the data behind it. A dirty page is
 * written only after {@code before} (the data it maps) is durable.
 */
final class Bat {
    static final int PAGE_ENTRIES = U32Table.PAGE_ENTRIES;

    private final U32Table table;

    Bat(SyncTracker file, long entries, WriteDependency before) {
        this.table = new U32Table("Parallels BAT page", file, ParallelsHeader.BYTES, entries, ByteOrder.LITTLE_ENDIAN,
                before);
    }

    long entries() {
        return table.entries();
    }

    /** The entry of guest cluster {@code index} (unsigned). */
    long get(long index) throws IOException {
        return Integer.toUnsignedLong(table.get(index));
    }

    /** How many entries from {@code index} on lie in the same page. */
    int entriesInPage(long index) {
        return table.entriesInPage(index);
    }

    void set(long index, long value) throws IOException {
        table.set(index, (int) value);
    }

    /** Writes every dirty page in file order, after {@code before}, and syncs. */
    void flush() throws IOException {
        table.flush();
    }

    /** Forgets every page (after the file changed under the cache). */
    void clear() {
        table.clear();
    }
}
