package io.diskmorph.fuzz;

import io.diskmorph.storage.MemoryStorage;
import io.diskmorph.storage.Storage;
import io.diskmorph.storage.StorageDir;

import java.io.IOException;
import java.nio.file.NoSuchFileException;
import java.util.Map;
import java.util.TreeMap;

/**
 * The sidecar directory of an in-memory image (journal, rollback record), so
 * the in-place converter can run inside a fuzz target without touching disk.
 * Files are capped like the image so a runaway journal fails instead of
 * exhausting the heap.
 */
final class MemoryDir implements StorageDir {
    private final long cap;
    private final Map<String, MemoryStorage> files = new TreeMap<>();

    MemoryDir(long cap) {
        this.cap = cap;
    }

    Map<String, MemoryStorage> files() {
        return files;
    }

    @Override
    public boolean exists(String name) {
        return files.containsKey(name);
    }

    @Override
    public Storage create(String name) {
        MemoryStorage s = new MemoryStorage(name, cap);
        files.put(name, s);
        return s;
    }

    @Override
    public Storage open(String name, boolean readOnly) throws IOException {
        MemoryStorage s = files.get(name);
        if (s == null) {
            throw new NoSuchFileException(name);
        }
        return readOnly ? s.copy(true) : s;
    }

    @Override
    public void delete(String name) {
        files.remove(name);
    }

    @Override
    public void rename(String from, String to) throws IOException {
        MemoryStorage s = files.remove(from);
        if (s == null) {
            throw new NoSuchFileException(from);
        }
        files.put(to, s);
    }

    @Override
    public void sync() {
    }

    @Override
    public long changeStamp(String name) {
        MemoryStorage s = files.get(name);
        return s == null ? -1 : java.util.Arrays.hashCode(s.toByteArray());
    }

    @Override
    public long usableSpace() {
        return cap;
    }

    @Override
    public io.diskmorph.storage.FileIdentity identity(String name) {
        // by name: the fuzzed image itself is a storage of its own, not a file of this directory
        return new io.diskmorph.storage.FileIdentity(1, name.hashCode() & 0x7fffffffL,
                io.diskmorph.storage.FileIdentity.UNKNOWN, 1);
    }
}
