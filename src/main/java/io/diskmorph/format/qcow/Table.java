package io.diskmorph.format.qcow;

import io.diskmorph.image.cache.CachedTable;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * A qcow L2 table (512 B to 64 KiB), or a page of the L1 table, as the
 * metadata caches hold it: big-endian u64 entries.
 */
final class Table extends CachedTable {
    final long[] entries;

    Table(int bytes) {
        this.entries = new long[bytes / 8];
    }

    @Override
    protected void read(ByteBuffer bytes) {
        bytes.order(ByteOrder.BIG_ENDIAN).asLongBuffer().get(entries);
    }

    @Override
    protected void write(ByteBuffer bytes) {
        bytes.order(ByteOrder.BIG_ENDIAN).asLongBuffer().put(entries);
    }
}
