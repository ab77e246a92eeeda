package io.diskmorph.copy;

import io.diskmorph.storage.Storage;

import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * qemu's cache=unsafe for the target of a copy: every call goes to the file
 * except {@link #sync()}, which does nothing. qemu-img convert writes its
 * target this way by default (no flush at all); the target is durable only
 * after an explicit sync (-t writeback). Writes still reach the file in the
 * drivers' order, so an interrupted process leaves what a crash-free stop
 * would; only a power loss can lose them.
 */
final class UnsafeCacheStorage implements Storage {
    private final Storage file;

    UnsafeCacheStorage(Storage file) {
        this.file = file;
    }

    @Override
    public void read(ByteBuffer dst, long position) throws IOException {
        file.read(dst, position);
    }

    @Override
    public void write(ByteBuffer src, long position) throws IOException {
        file.write(src, position);
    }

    @Override
    public void sync() {
        // cache=unsafe: flushes are ignored
    }

    @Override
    public long size() throws IOException {
        return file.size();
    }

    @Override
    public void truncate(long size) throws IOException {
        file.truncate(size);
    }

    @Override
    public long nextData(long from) throws IOException {
        return file.nextData(from);
    }

    @Override
    public long nextHole(long from) throws IOException {
        return file.nextHole(from);
    }

    @Override
    public void punchHole(long offset, long length) throws IOException {
        file.punchHole(offset, length);
    }

    @Override
    public long allocatedBytes() throws IOException {
        return file.allocatedBytes();
    }

    @Override
    public boolean isReadOnly() {
        return file.isReadOnly();
    }

    @Override
    public String name() {
        return file.name();
    }

    @Override
    public void close() throws IOException {
        file.close();
    }
}
