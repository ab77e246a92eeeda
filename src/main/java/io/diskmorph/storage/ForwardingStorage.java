package io.diskmorph.storage;

import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * A {@link Storage} that passes every call to another one; views and
 * wrappers (read-only, cache=unsafe, recording) override only what they
 * change.
 */
public abstract class ForwardingStorage implements Storage {
    protected final Storage inner;

    protected ForwardingStorage(Storage inner) {
        this.inner = inner;
    }

    @Override
    public void read(ByteBuffer dst, long position) throws IOException {
        inner.read(dst, position);
    }

    @Override
    public void write(ByteBuffer src, long position) throws IOException {
        inner.write(src, position);
    }

    @Override
    public void sync() throws IOException {
        inner.sync();
    }

    @Override
    public long size() throws IOException {
        return inner.size();
    }

    @Override
    public void truncate(long size) throws IOException {
        inner.truncate(size);
    }

    @Override
    public long nextData(long from) throws IOException {
        return inner.nextData(from);
    }

    @Override
    public long nextHole(long from) throws IOException {
        return inner.nextHole(from);
    }

    @Override
    public void punchHole(long offset, long length) throws IOException {
        inner.punchHole(offset, length);
    }

    @Override
    public void expectSparseQueries() {
        inner.expectSparseQueries();
    }

    @Override
    public long allocatedBytes() throws IOException {
        return inner.allocatedBytes();
    }

    @Override
    public boolean isReadOnly() {
        return inner.isReadOnly();
    }

    @Override
    public String name() {
        return inner.name();
    }

    @Override
    public void close() throws IOException {
        inner.close();
    }
}
