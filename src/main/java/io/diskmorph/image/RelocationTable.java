package io.diskmorph.image;

import io.diskmorph.storage.Storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.BitSet;

/**
 * One new metadata table of a {@link RelocatableImage.Relocation} (a qcow2
 * L2 table or refcount block, a QED L2 table), held whole in memory: the
 * region is small and its tables are written whole once, then by the pages
 * that changed, so a remap rewrites a few KiB rather than whole tables.
 */
public final class RelocationTable {
    private final long hostOffset;
    private final byte[] bytes;
    private final int pageBytes;
    private final BitSet dirtyPages = new BitSet();

    /** A table of {@code size} zero bytes at {@code hostOffset}, written back in pages of {@code pageBytes}. */
    public RelocationTable(long hostOffset, int size, int pageBytes) {
        this.hostOffset = hostOffset;
        this.bytes = new byte[size];
        this.pageBytes = pageBytes;
    }

    public long hostOffset() {
        return hostOffset;
    }

    /** The table's bytes, to read and change (each change followed by {@link #changed}). */
    public byte[] bytes() {
        return bytes;
    }

    /** The byte at {@code byteOffset} changed: its page is written by the next {@link #writeDirty}. */
    public void changed(int byteOffset) {
        dirtyPages.set(byteOffset / pageBytes);
    }

    /** Writes the whole table (its first write); no page is dirty after. */
    public void writeWhole(Storage file) throws IOException {
        file.write(ByteBuffer.wrap(bytes), hostOffset);
        dirtyPages.clear();
    }

    /** Writes the runs of changed pages (not synced). */
    public void writeDirty(Storage file) throws IOException {
        for (int p = dirtyPages.nextSetBit(0); p >= 0; ) {
            int end = dirtyPages.nextClearBit(p);
            // a table that is not a whole number of pages (a Parallels BAT) ends inside its last page
            int length = Math.min((end - p) * pageBytes, bytes.length - p * pageBytes);
            file.write(ByteBuffer.wrap(bytes, p * pageBytes, length), hostOffset + (long) p * pageBytes);
            p = dirtyPages.nextSetBit(end);
        }
        dirtyPages.clear();
    }
}
