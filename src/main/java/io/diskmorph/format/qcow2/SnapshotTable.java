package io.diskmorph.format.qcow2;

import io.diskmorph.image.CorruptImageException;
import io.diskmorph.storage.Storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * The internal snapshot table (qcow2.rst "Snapshots"): variable-size
 * entries, each a 40-byte header, extra data, id and name, padded to 8
 * bytes. Limits as qemu's qcow2_read_snapshots.
 */
final class SnapshotTable {
    static final int MAX_EXTRA_DATA = 1024;
    /** qemu QCOW_MAX_SNAPSHOTS_SIZE. */
    static final long MAX_TABLE_BYTES = 1024L * Qcow2Header.MAX_SNAPSHOTS;

    /** One snapshot; {@code icount} is -1 when the entry predates the field. */
    record Snapshot(String id, String name, long l1TableOffset, int l1Size, long dateSec, long dateNsec,
                    long vmClockNsec, long vmStateSize, long diskSize, long icount, long entryOffset) {
    }

    private SnapshotTable() {
    }

    /** The snapshots and the table's total size in bytes. */
    record Table(List<Snapshot> snapshots, long byteSize) {
    }

    static Table read(Storage storage, Qcow2Header header) throws IOException {
        List<Snapshot> out = new ArrayList<>();
        long off = header.snapshotsOffset;
        long start = off;
        for (int i = 0; i < Integer.toUnsignedLong(header.nbSnapshots); i++) {
            ByteBuffer h = storage.readBytes(off, Qcow2Header.SNAPSHOT_HEADER_SIZE);
            long l1Offset = h.getLong(0);
            int l1Size = h.getInt(8);
            int idSize = Short.toUnsignedInt(h.getShort(12));
            int nameSize = Short.toUnsignedInt(h.getShort(14));
            long dateSec = Integer.toUnsignedLong(h.getInt(16));
            long dateNsec = Integer.toUnsignedLong(h.getInt(20));
            long vmClock = h.getLong(24);
            long vmState = Integer.toUnsignedLong(h.getInt(32));
            long extraSize = Integer.toUnsignedLong(h.getInt(36));
            if (extraSize > MAX_EXTRA_DATA) {
                throw new CorruptImageException("qcow2 snapshot table", off, "too much extra data in snapshot entry "
                        + i + " (" + extraSize + " bytes)");
            }
            ByteBuffer extra = storage.readBytes(off + Qcow2Header.SNAPSHOT_HEADER_SIZE, (int) extraSize);
            long diskSize = header.size;
            long icount = -1;
            if (extraSize >= 8) {
                vmState = extra.getLong(0);
            }
            if (extraSize >= 16) {
                diskSize = extra.getLong(8);
            }
            if (extraSize >= 24) {
                icount = extra.getLong(16);
            }
            long strings = off + Qcow2Header.SNAPSHOT_HEADER_SIZE + extraSize;
            String id = string(storage, strings, idSize);
            String name = string(storage, strings + idSize, nameSize);
            out.add(new Snapshot(id, name, l1Offset, l1Size, dateSec, dateNsec, vmClock, vmState, diskSize, icount,
                    off));
            off = (strings + idSize + nameSize + 7) & ~7L;
            if (off - start > MAX_TABLE_BYTES) {
                throw new CorruptImageException("qcow2 snapshot table", start, "table larger than "
                        + MAX_TABLE_BYTES + " bytes");
            }
        }
        return new Table(List.copyOf(out), off - start);
    }

    private static String string(Storage storage, long at, int len) throws IOException {
        ByteBuffer b = storage.readBytes(at, len);
        return new String(b.array(), 0, len, StandardCharsets.UTF_8);
    }
}
