package io.diskmorph.image.cache;

import java.nio.ByteBuffer;

/**
 * A metadata table (or a fixed-size page of one) as a {@link MetadataCache}
 * holds it, decoded into whatever form the format reads fastest (an L2
 * table as longs, a refcount block as bytes). The cache reuses the object
 * for the next table once it evicts this one, so a driver holds a table
 * only between two calls into the cache that may load another.
 */
public abstract class CachedTable {
    long hostOffset = -1;
    int slot = -1;

    /** Where the table lies in the file. */
    public final long hostOffset() {
        return hostOffset;
    }

    /** Decodes the table from its on-disk bytes; any state kept beside the entries starts afresh. */
    protected abstract void read(ByteBuffer bytes);

    /** Encodes the table into {@code bytes} (exactly the table's size remaining). */
    protected abstract void write(ByteBuffer bytes);
}
