package io.diskmorph.format.vmdk;

import io.diskmorph.image.cache.CachedTable;
import io.diskmorph.image.cache.MetadataCache;
import io.diskmorph.image.cache.SyncTracker;
import io.diskmorph.storage.Storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

/**
 * Grain directory pages and grain tables of every sparse extent of one
 * image, in the shared {@link MetadataCache}s keyed by extent file and host
 * offset: memory does not depend on the capacity (a 2 TB disk has 65,536
 * grain tables) nor on the number of extents. Tables are cached in size
 * classes (the table's bytes rounded up to a power of two, one cache per
 * class and entry width): directory pages of {@link #GD_PAGE_ENTRIES}
 * entries, hosted grain tables of 512 entries, ESX and seSparse tables of
 * 4096. Entries are unsigned, held as longs (u32 or u64 little endian in
 * the file); a table that lies past the end of its file reads as zeros,
 * as in qemu.
 *
 * <p>Writes: a grain table entry changes in the cache ({@link #setEntry})
 * and is written back after the guest data of its file is durable (the
 * file's {@link SyncTracker} is a dependency of the table's cache); a
 * directory entry is written through at once ({@link #writeDirectoryEntry}),
 * as qemu's vmdk.c does, after the new table it names.
 */
final class TableCache {
    /** Directory entries read at a time. */
    static final int GD_PAGE_ENTRIES = 1024;
    /** Largest table: seSparse's 4096 entries of 8 bytes. */
    private static final int MAX_CLASS_SHIFT = 15;

    /** The entries of one cached table, as many as its size class holds. */
    static final class Entries extends CachedTable {
        private final int entryBytes;
        final long[] entries;

        Entries(int tableBytes, int entryBytes) {
            this.entryBytes = entryBytes;
            this.entries = new long[tableBytes / entryBytes];
        }

        @Override
        protected void read(ByteBuffer bytes) {
            ByteBuffer b = bytes.order(ByteOrder.LITTLE_ENDIAN);
            int at = b.position();
            if (entryBytes == 8) {
                for (int i = 0; i < entries.length; i++) {
                    entries[i] = b.getLong(at + i * 8);
                }
            } else {
                for (int i = 0; i < entries.length; i++) {
                    entries[i] = Integer.toUnsignedLong(b.getInt(at + i * 4));
                }
            }
        }

        @Override
        protected void write(ByteBuffer bytes) {
            ByteBuffer b = bytes.order(ByteOrder.LITTLE_ENDIAN);
            int at = b.position();
            for (int i = 0; i < entries.length; i++) {
                if (entryBytes == 8) {
                    b.putLong(at + i * 8, entries[i]);
                } else {
                    b.putInt(at + i * 4, (int) entries[i]);
                }
            }
        }
    }

    /** What one file is to the caches. */
    private static final class File {
        final SyncTracker tracker;
        final int number;
        long size;

        File(SyncTracker tracker, int number, long size) {
            this.tracker = tracker;
            this.number = number;
            this.size = size;
        }
    }

    private final long classBytes;
    /** [entry width 4 or 8][log2 of the class's table bytes]; made when first asked. */
    @SuppressWarnings("unchecked")
    private final MetadataCache<Entries>[][] caches = new MetadataCache[2][MAX_CLASS_SHIFT + 1];
    private final Map<Storage, File> files = new IdentityHashMap<>();
    /** The same files by number. */
    private final List<File> numbered = new ArrayList<>();
    /** The last file asked for (lookups come in runs of one file). */
    private Storage lastStorage;
    private File lastFile;
    /** Tables that lie wholly past the end of their file read as zeros: one shared array per class. */
    private final long[][][] zeros = new long[2][MAX_CLASS_SHIFT + 1][];

    /** @param classBytes the tables of one size class kept in memory, in bytes (at least two tables) */
    TableCache(long classBytes) {
        this.classBytes = classBytes;
    }

    /**
     * The entries of the table of {@code count} entries of {@code entryBytes}
     * each at {@code offset} of {@code file}: at least {@code count} of them
     * (those past it are whatever follows in the file). Valid until the next
     * call into this cache that reads another table of the same size class.
     */
    long[] table(Storage file, long offset, int count, int entryBytes) throws IOException {
        File f = file(file);
        int shift = classShift(count, entryBytes);
        int width = entryBytes == 8 ? 1 : 0;
        if (offset >= f.size) {
            // hostile directories can be 32 Mi entries past the end: nothing to read or keep
            long[] z = zeros[width][shift];
            return z != null ? z : (zeros[width][shift] = new long[(1 << shift) / entryBytes]);
        }
        return cache(width, shift, entryBytes).get(f.number, offset).entries;
    }

    /**
     * Sets entry {@code index} of the grain table at {@code offset} (inside
     * the file, exactly a size class long) to {@code value}; written back
     * later, after the guest data written to {@code file} so far.
     */
    void setEntry(Storage file, long offset, int count, int entryBytes, int index, long value) throws IOException {
        File f = file(file);
        int shift = classShift(count, entryBytes);
        if (count * entryBytes != 1 << shift || offset >= f.size) {
            throw new IllegalStateException("grain table at 0x" + Long.toHexString(offset) + " cannot be written");
        }
        MetadataCache<Entries> c = cache(entryBytes == 8 ? 1 : 0, shift, entryBytes);
        Entries t = c.get(f.number, offset);
        t.entries[index] = value;
        c.markDirty(t);
        c.dependOn(f.tracker); // the grains this table may now name are durable before it is
        if (c.isMostlyDirty()) {
            // evicting dirty tables one at a time would sync the data once per table (a long copy:
            // once per 32 MiB); half the cache at once syncs it once per half a cache of tables
            c.flush();
        }
    }

    /**
     * Writes directory entry {@code index} of the directory at {@code
     * directory} (4-byte entries) through to the file and into a cached copy
     * of its page; the caller syncs.
     */
    void writeDirectoryEntry(Storage file, long directory, long gdEntries, long index, long value)
            throws IOException {
        File f = file(file);
        long page = index / GD_PAGE_ENTRIES;
        long pageOffset = directory + page * GD_PAGE_ENTRIES * 4;
        ByteBuffer b = ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt(0, (int) value);
        f.tracker.write(b, directory + index * 4);
        // a directory page that lay past the end of the file read as zeros without being cached; it is in
        // the file now, and must be read from it
        f.size = Math.max(f.size, directory + index * 4 + 4);
        int count = (int) Math.min(GD_PAGE_ENTRIES, gdEntries - page * GD_PAGE_ENTRIES);
        Entries cached = cache(0, classShift(count, 4), 4).peek(f.number, pageOffset);
        if (cached != null) {
            cached.entries[(int) (index % GD_PAGE_ENTRIES)] = value;
        }
    }

    /** The write tracker of {@code file}: guest data goes through it, so tables can wait for it. */
    SyncTracker tracker(Storage file) throws IOException {
        return file(file).tracker;
    }

    /** File sizes, asked once, then kept by the writer ({@link #grew}). */
    long fileSize(Storage file) throws IOException {
        return file(file).size;
    }

    /** The writer appended to {@code file}: it now ends at {@code size}. */
    void grew(Storage file, long size) throws IOException {
        File f = file(file);
        f.size = Math.max(f.size, size);
    }

    /** Writes every dirty table (after the data it depends on) and syncs every file written. */
    void flush() throws IOException {
        for (MetadataCache<Entries>[] byWidth : caches) {
            for (MetadataCache<Entries> c : byWidth) {
                if (c != null) {
                    c.flush();
                }
            }
        }
        for (File f : numbered) {
            f.tracker.flush();
        }
    }

    private File file(Storage storage) throws IOException {
        if (storage == lastStorage) {
            return lastFile;
        }
        File f = files.get(storage);
        if (f == null) {
            SyncTracker tracker = new SyncTracker(storage);
            f = new File(tracker, numbered.size(), storage.size());
            files.put(storage, f);
            numbered.add(f);
            for (MetadataCache<Entries>[] byWidth : caches) {
                for (MetadataCache<Entries> c : byWidth) {
                    if (c != null) {
                        c.addFile(tracker); // number f.number in every cache
                    }
                }
            }
        }
        lastStorage = storage;
        lastFile = f;
        return f;
    }

    private MetadataCache<Entries> cache(int width, int shift, int entryBytes) {
        MetadataCache<Entries> c = caches[width][shift];
        if (c == null) {
            int bytes = 1 << shift;
            int capacity = (int) Math.max(2, Math.min(1 << 16, classBytes / bytes));
            c = new MetadataCache<>("VMDK table of " + bytes + " bytes", bytes, capacity,
                    () -> new Entries(bytes, entryBytes));
            for (File f : numbered) {
                c.addFile(f.tracker); // numbered in the order files were met, the same in every cache
            }
            caches[width][shift] = c;
        }
        return c;
    }

    /** log2 of the table's bytes rounded up to a power of two. */
    private static int classShift(int count, int entryBytes) {
        int bytes = Math.max(4, count * entryBytes);
        int shift = 32 - Integer.numberOfLeadingZeros(bytes - 1);
        if (shift > MAX_CLASS_SHIFT) {
            throw new IllegalArgumentException("VMDK table of " + bytes + " bytes");
        }
        return shift;
    }
}
