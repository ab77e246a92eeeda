package io.diskmorph.api;

import io.diskmorph.storage.Storage;

import java.io.IOException;
import java.nio.ByteBuffer;

/** An {@link ImageStorage} seen through the internal storage contract it mirrors. */
final class StorageAdapter implements Storage {
    private final ImageStorage s;

    StorageAdapter(ImageStorage s) {
        this.s = s;
    }

    @Override
    public void read(ByteBuffer dst, long position) throws IOException {
        s.read(dst, position);
    }

    @Override
    public void write(ByteBuffer src, long position) throws IOException {
        s.write(src, position);
    }

    @Override
    public void sync() throws IOException {
        s.sync();
    }

    @Override
    public long size() throws IOException {
        return s.size();
    }

    @Override
    public void truncate(long size) throws IOException {
        s.truncate(size);
    }

    @Override
    public long nextData(long from) throws IOException {
        return s.nextData(from);
    }

    @Override
    public long nextHole(long from) throws IOException {
        return s.nextHole(from);
    }

    @Override
    public void punchHole(long offset, long length) throws IOException {
        s.punchHole(offset, length);
    }

    @Override
    public long allocatedBytes() throws IOException {
        return s.allocatedBytes();
    }

    @Override
    public boolean isReadOnly() {
        return s.isReadOnly();
    }

    @Override
    public String name() {
        return s.name();
    }

    @Override
    public void close() throws IOException {
        s.close();
    }
}
