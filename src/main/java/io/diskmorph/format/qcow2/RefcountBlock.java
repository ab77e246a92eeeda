package io.diskmorph.format.qcow2;

import io.diskmorph.image.cache.CachedTable;

import java.nio.ByteBuffer;

/** A refcount block as the metadata cache holds it: its bytes ({@link Refcounts#entry} reads them). */
final class RefcountBlock extends CachedTable {
    final byte[] bytes;
    /** Passed the overlap check before its first write in this session (new blocks need none). */
    boolean checked;

    RefcountBlock(long clusterSize) {
        this.bytes = new byte[(int) clusterSize];
    }

    @Override
    protected void read(ByteBuffer from) {
        from.get(bytes);
        checked = false;
    }

    @Override
    protected void write(ByteBuffer to) {
        to.put(bytes);
    }
}
