package io.diskmorph.format.vhdx;

import io.diskmorph.image.cache.CachedTable;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/** One page of the BAT as the metadata cache holds it: its 64-bit entries. */
final class BatPage extends CachedTable {
    static final int BYTES = 64 * 1024;
    static final int ENTRIES = BYTES / 8;

    final long[] entries = new long[ENTRIES];

    @Override
    protected void read(ByteBuffer bytes) {
        bytes.order(ByteOrder.LITTLE_ENDIAN).asLongBuffer().get(entries);
    }

    @Override
    protected void write(ByteBuffer bytes) {
        bytes.order(ByteOrder.LITTLE_ENDIAN).asLongBuffer().put(entries);
    }
}
