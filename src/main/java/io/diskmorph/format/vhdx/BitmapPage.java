package io.diskmorph.format.vhdx;

import io.diskmorph.image.cache.CachedTable;

import java.nio.ByteBuffer;

/** 4 KiB of a sector bitmap block (32,768 sectors, a bit each) as the metadata cache holds it. */
final class BitmapPage extends CachedTable {
    static final int BYTES = 4096;

    final byte[] bits = new byte[BYTES];

    boolean isSet(int bit) {
        return (bits[bit >>> 3] & (1 << (bit & 7))) != 0;
    }

    @Override
    protected void read(ByteBuffer bytes) {
        bytes.get(bits);
    }

    @Override
    protected void write(ByteBuffer bytes) {
        bytes.put(bits);
    }
}
