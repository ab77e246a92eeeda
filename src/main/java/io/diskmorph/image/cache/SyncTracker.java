package io.diskmorph.image.cache;

import io.diskmorph.storage.Storage;

import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * A file's writes and whether they are durable yet: {@link #flush} syncs
 * only when something was written since the last sync, so a chain of
 * dependencies that all end in "sync the file" syncs it once. A driver
 * writes its guest data and its metadata caches through the same tracker.
 */
public final class SyncTracker implements WriteDependency {
    private final Storage storage;
    private boolean unsynced;

    public SyncTracker(Storage storage) {
        this.storage = storage;
    }

    public Storage storage() {
        return storage;
    }

    /** Writes {@code src} at {@code offset}; not durable until the next flush. */
    public void write(ByteBuffer src, long offset) throws IOException {
        storage.write(src, offset);
        unsynced = true;
    }

    /** Deallocates a range (it reads as zeros); not durable until the next flush. */
    public void punchHole(long offset, long length) throws IOException {
        storage.punchHole(offset, length);
        unsynced = true;
    }

    /** Makes every write so far durable, syncing only when one is not yet. */
    @Override
    public void flush() throws IOException {
        if (unsynced) {
            storage.sync();
            unsynced = false;
        }
    }
}
