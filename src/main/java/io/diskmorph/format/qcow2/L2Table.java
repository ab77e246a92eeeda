package io.diskmorph.format.qcow2;

import io.diskmorph.image.cache.CachedTable;

import java.nio.ByteBuffer;

/** An L2 table as the metadata cache holds it: entries decoded to longs (two words per extended entry). */
final class L2Table extends CachedTable {
    final long[] words;
    /** Verified private to the active L1 (refcount 1) in this writer's session; forgotten when evicted. */
    boolean writable;

    L2Table(long clusterSize) {
        this.words = new long[(int) (clusterSize / 8)];
    }

    @Override
    protected void read(ByteBuffer bytes) {
        bytes.asLongBuffer().get(words);
        writable = false;
    }

    @Override
    protected void write(ByteBuffer bytes) {
        bytes.asLongBuffer().put(words);
    }
}
