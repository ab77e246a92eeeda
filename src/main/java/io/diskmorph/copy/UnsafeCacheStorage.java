package io.diskmorph.copy;

import io.diskmorph.storage.ForwardingStorage;
import io.diskmorph.storage.Storage;

/**
 * qemu's cache=unsafe for the target of a copy: every call goes to the file
 * except {@link #sync()}, which does nothing. qemu-img convert writes its
 * target this way by default (no flush at all); the target is durable only
 * after an explicit sync (-t writeback). Writes still reach the file in the
 * drivers' order, so an interrupted process leaves what a crash-free stop
 * would; only a power loss can lose them.
 */
final class UnsafeCacheStorage extends ForwardingStorage {
    UnsafeCacheStorage(Storage file) {
        super(file);
    }

    @Override
    public void sync() {
        // cache=unsafe: flushes are ignored
    }
}
