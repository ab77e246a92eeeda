package io.diskmorph.image;

import io.diskmorph.storage.Storage;

import java.io.IOException;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * The part of a {@link RelocatableImage.Relocation} that two-level formats
 * without reference counts share (QED, qcow v1): new second-level tables of
 * 8-byte entries that hold a data unit's host offset, held whole in memory
 * ({@link RelocationTable}), one per first-level entry whose range maps data;
 * the first-level table written in pieces; and the remap: the caller's data
 * synced before any entry points to it, then the tables' changed pages, then
 * a sync. The old places are free once the new entries are durable (no
 * reference counts to update).
 */
public abstract class L2Relocation implements RelocatableImage.Relocation {
    private final VarHandle entry;
    private final ByteOrder order;
    protected final Storage file;
    protected final long unitSize;
    private final long entriesPerTable;
    protected final long base;
    private final long end;
    /** The new second-level table per first-level index, null where the range maps no data. */
    protected final RelocationTable[] tables;

    /**
     * @param tableOffsets host offset of the new table per first-level index, -1 for none
     * @param end          end of the relocated metadata
     */
    protected L2Relocation(Storage file, ByteOrder order, long unitSize, long entriesPerTable, int tableBytes,
                           int pageBytes, long base, long end, long[] tableOffsets) {
        this.entry = MethodHandles.byteArrayViewVarHandle(long[].class, order);
        this.order = order;
        this.file = file;
        this.unitSize = unitSize;
        this.entriesPerTable = entriesPerTable;
        this.base = base;
        this.end = end;
        this.tables = new RelocationTable[tableOffsets.length];
        for (int i = 0; i < tableOffsets.length; i++) {
            if (tableOffsets[i] >= 0) {
                tables[i] = new RelocationTable(tableOffsets[i], tableBytes, pageBytes);
            }
        }
    }

    /** Points guest unit {@code guest} at {@code host} in the new tables (in memory). */
    protected final void setEntry(long guest, long host) {
        long unit = guest / unitSize;
        RelocationTable t = tables[(int) (unit / entriesPerTable)];
        int at = (int) (unit % entriesPerTable) * 8;
        entry.set(t.bytes(), at, host);
        t.changed(at);
    }

    private long entryHost(long guest) {
        long unit = guest / unitSize;
        RelocationTable t = tables[(int) (unit / entriesPerTable)];
        return t == null ? 0 : (long) entry.get(t.bytes(), (int) (unit % entriesPerTable) * 8);
    }

    /**
     * Writes the first-level table ({@code bytes} long at {@code offset}: the
     * new tables' offsets, zeros elsewhere) in pieces of at most 1 MiB, as it
     * may be large and is mostly zeros, then every new table whole; not
     * synced.
     */
    protected final void writeTables(long offset, long bytes) throws IOException {
        byte[] piece = new byte[(int) Math.min(1 << 20, Math.max(8, bytes))];
        for (long done = 0; done < bytes; done += piece.length) {
            java.util.Arrays.fill(piece, (byte) 0);
            int n = (int) Math.min(piece.length, bytes - done);
            for (int k = 0; k < n / 8 && done / 8 + k < tables.length; k++) {
                RelocationTable t = tables[(int) (done / 8 + k)];
                if (t != null) {
                    entry.set(piece, 8 * k, t.hostOffset());
                }
            }
            file.write(ByteBuffer.wrap(piece, 0, n), offset + done);
        }
        for (RelocationTable t : tables) {
            if (t != null) {
                t.writeWhole(file);
            }
        }
    }

    /** The header's switch: one 8-byte field written with the format's byte order, synced. */
    protected final void switchField(long fieldOffset, long value) throws IOException {
        file.write(ByteBuffer.allocate(8).order(order).putLong(0, value), fieldOffset);
        file.sync();
    }

    @Override
    public final long metadataEnd() {
        return end;
    }

    @Override
    public final void remap(long[] guestOffsets, long[] hostOffsets, int count) throws IOException {
        for (int k = 0; k < count; k++) {
            long host = hostOffsets[k];
            long was = entryHost(guestOffsets[k]);
            RelocationUnits.checkRemap(guestOffsets[k], was, host, unitSize, base);
            setEntry(guestOffsets[k], host);
        }
        file.sync(); // the caller's data, before any entry points to it
        for (RelocationTable t : tables) {
            if (t != null) {
                t.writeDirty(file);
            }
        }
        file.sync();
    }

    @Override
    public final void sync() throws IOException {
        file.sync();
    }
}
