package io.diskmorph.format.qcow2;

import io.diskmorph.image.HostSpace;
import io.diskmorph.storage.Storage;

import java.io.IOException;
import java.nio.ByteBuffer;

/** {@link HostSpace} for {@code create}: hands out space past everything handed out before, in order. */
final class BumpHostSpace implements HostSpace {
    private final Storage storage;
    private long next;

    /** Space starts at {@code start} (the header zone below it stays reserved). */
    BumpHostSpace(Storage storage, long start) {
        this.storage = storage;
        this.next = start;
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
