package io.diskmorph.image;

import io.diskmorph.storage.Storage;

import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * {@link HostSpace} for {@code create}: hands out space past everything
 * handed out before, in order, over a new (empty) file.
 */
public final class BumpHostSpace implements HostSpace {
    private final Storage storage;
    private long next;

    /** Space starts at {@code start} (the header zone below it stays reserved). */
    public BumpHostSpace(Storage storage, long start) {
        this.storage = storage;
        this.next = start;
    }

    /** Moves the start past {@code offset} (a header zone known only once the builder exists). */
    public void startAt(long offset) {
        next = Math.max(next, offset);
    }

    @Override
    public long allocate(long length, long alignment) {
        long off = (next + alignment - 1) & -alignment;
        next = Math.addExact(off, length);
        return off;
    }

    @Override
    public void write(long hostOffset, ByteBuffer data) throws IOException {
        storage.write(data, hostOffset);
    }
}
