package io.diskmorph.format.vmdk;

import io.diskmorph.storage.Storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Grain directory pages and grain tables of every sparse extent of one
 * image, read on demand and kept in a least-recently-used cache bounded in
 * bytes: memory does not depend on the capacity (a 2 TB disk has 65,536
 * grain tables) nor on the number of extents. Entries are unsigned, held as
 * longs (u32 or u64 little endian in the file); a table that lies past the
 * end of its file reads as zeros, as in qemu.
 */
final class TableCache {
    /** Directory entries read at a time. */
    static final int GD_PAGE_ENTRIES = 1024;

    private record Key(Storage file, long offset) {
    }

    private final long capacityBytes;
    private final LinkedHashMap<Key, long[]> tables = new LinkedHashMap<>(64, 0.75f, true);
    private long bytes;
    /** The last few answers, looked up without a key object (no allocation on the hot path). */
    private static final int RECENT = 4;
    private final Storage[] recentFiles = new Storage[RECENT];
    private final long[] recentOffsets = new long[RECENT];
    private final long[][] recentTables = new long[RECENT][];
    private int nextRecent;
    /** File sizes, asked once: extent files are opened read-only and locked. */
    private final Map<Storage, Long> fileSizes = new IdentityHashMap<>();
    /** Tables that lie wholly past the end of their file read as zeros: one shared array per length. */
    private final long[][] zeros = new long[Math.max(GD_PAGE_ENTRIES, SparseHeader.COWD_GT_ENTRIES) + 1][];

    TableCache(long capacityBytes) {
        this.capacityBytes = capacityBytes;
    }

    /** {@code count} entries of {@code entryBytes} each at {@code offset} of {@code file}. */
    long[] table(Storage file, long offset, int count, int entryBytes) throws IOException {
        for (int i = 0; i < RECENT; i++) { // scans ask for the same directory page and table again and again
            if (recentFiles[i] == file && recentOffsets[i] == offset && recentTables[i].length == count) {
                return recentTables[i];
            }
        }
        long[] t = lookup(file, offset, count, entryBytes);
        recentFiles[nextRecent] = file;
        recentOffsets[nextRecent] = offset;
        recentTables[nextRecent] = t;
        nextRecent = (nextRecent + 1) % RECENT;
        return t;
    }

    private long[] lookup(Storage file, long offset, int count, int entryBytes) throws IOException {
        if (offset >= fileSize(file)) {
            // hostile directories can be 32 Mi entries past the end: nothing to read or keep
            long[] z = zeros[count];
            return z != null ? z : (zeros[count] = new long[count]);
        }
        Key key = new Key(file, offset);
        long[] t = tables.get(key);
        if (t != null && t.length == count) {
            return t;
        }
        ByteBuffer raw = file.readBytes(offset, count * entryBytes).order(ByteOrder.LITTLE_ENDIAN);
        t = new long[count];
        for (int i = 0; i < count; i++) {
            t[i] = entryBytes == 8 ? raw.getLong(i * 8) : Integer.toUnsignedLong(raw.getInt(i * 4));
        }
        long[] old = tables.put(key, t);
        bytes += 8L * count - (old == null ? 0 : 8L * old.length);
        var it = tables.entrySet().iterator();
        while (bytes > capacityBytes && it.hasNext()) {
            Map.Entry<Key, long[]> eldest = it.next();
            if (eldest.getValue() == t) {
                break;
            }
            bytes -= 8L * eldest.getValue().length;
            it.remove();
        }
        return t;
    }

    long fileSize(Storage file) throws IOException {
        Long size = fileSizes.get(file);
        if (size == null) {
            size = file.size();
            fileSizes.put(file, size);
        }
        return size;
    }
}
