package io.diskmorph.format.vdi;

import io.diskmorph.image.cache.U32Table;
import io.diskmorph.image.cache.SyncTracker;
import io.diskmorph.image.cache.WriteDependency;

import java.io.IOException;
import java.nio.ByteOrder;

/**
 * The VDI block map (one u32 per guest block) read in pages of 64 KiB
 * through the shared bounded metadata cache ({@link U32Table}), so memory does not
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
    static final int PAGE_ENTRIES = U32Table.PAGE_ENTRIES;

    private final U32Table table;

    BlockMap(SyncTracker file, long mapOffset, long blocks, WriteDependency before) {
        this.table = new U32Table("VDI block map page", file, mapOffset, blocks, ByteOrder.LITTLE_ENDIAN, before);
    }

    static boolean isAllocated(int entry) {
        return Integer.compareUnsigned(entry, DISCARDED) < 0;
    }

    long blocks() {
        return table.entries();
    }

    /** The entry of guest block {@code block}. */
    int get(long block) throws IOException {
        return table.get(block);
    }

    /** How many entries from {@code block} on lie in the same page (a run may be answered from one page). */
    int entriesInPage(long block) {
        return table.entriesInPage(block);
    }

    void set(long block, int value) throws IOException {
        table.set(block, value);
    }

    /** Writes every dirty page in file order, after {@code before}, and syncs. */
    void flush() throws IOException {
        table.flush();
    }
}
