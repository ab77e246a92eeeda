package io.diskmorph.format.qed;

import io.diskmorph.image.cache.CachedTable;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * A page of a QED table (L1 or L2) as the metadata caches hold it: at most
 * 64 KiB of little-endian entries, so memory does not depend on the table
 * size (up to 16 clusters of 64 MiB).
 */
final class TablePage extends CachedTable {
    static final int MAX_BYTES = 64 * 1024;

    final long[] entries;

    TablePage(int pageBytes) {
        this.entries = new long[pageBytes / 8];
    }

    /** Bytes of one page of a table of {@code tableBytes}. */
    static int pageBytes(long tableBytes) {
        return (int) Math.min(tableBytes, MAX_BYTES);
    }

    @Override
    protected void read(ByteBuffer bytes) {
        bytes.order(ByteOrder.LITTLE_ENDIAN).asLongBuffer().get(entries);
    }

    @Override
    protected void write(ByteBuffer bytes) {
        bytes.order(ByteOrder.LITTLE_ENDIAN).asLongBuffer().put(entries);
    }
}
