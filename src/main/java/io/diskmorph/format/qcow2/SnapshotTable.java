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
 * entries, each a 40-byte header, extra data, id and name, each entry
 * starting 8-byte aligned. Read with qemu's rules (qcow2_do_read_snapshots),
 * strictly for an open and, for check, optionally repairing the way
 * {@code qemu-img check -r all} does.
 */
final class SnapshotTable {
    static final int MAX_EXTRA_DATA = 1024;
    /** qemu QCOW_MAX_SNAPSHOTS_SIZE. */
    static final long MAX_TABLE_BYTES = 1024L * Qcow2Header.MAX_SNAPSHOTS;
    /** Extra data a version 3 entry must have: vm_state_size_large and disk_size. */
    static final int V3_MIN_EXTRA_DATA = 16;
    /** Extra data qemu 7.2 knows and writes: the two above and icount. */
    static final int KNOWN_EXTRA_DATA = 24;

    /**
     * One snapshot; {@code icount} is -1 when the entry predates the field.
     * {@code entryOffset} is where its 40-byte header starts, the extra data
     * follows ({@code extraDataSize} bytes as stored).
     */
    record Snapshot(String id, String name, long l1TableOffset, int l1Size, long dateSec, long dateNsec,
                    long vmClockNsec, long vmStateSize, long diskSize, long icount, long entryOffset,
                    long extraDataSize) {
    }

    private SnapshotTable() {
    }

    /** The snapshots and the table's total size in bytes. */
    record Table(List<Snapshot> snapshots, long byteSize) {
    }

    /**
     * A table read for check: the snapshots kept, the table size, how many
     * entries had their oversized extra data cut ({@code extraDropped}) and
     * how many trailing entries were dropped ({@code discarded}) in repair
     * mode, qemu's messages for those, or the error that stopped reading.
     */
    record Checked(Table table, int extraDropped, int discarded, List<String> messages, String error,
                   String hint) {
    }

    /** Reads the table an open image uses; a table qemu would refuse is a {@link CorruptImageException}. */
    static Table read(Storage storage, Qcow2Header header) throws IOException {
        Checked c = readChecked(storage, header, header.snapshotsOffset,
                Integer.toUnsignedLong(header.nbSnapshots), false);
        if (c.error() != null) {
            throw new CorruptImageException("qcow2 snapshot table", header.snapshotsOffset, c.error());
        }
        return c.table();
    }

    /**
     * The table for an image opened for check: qemu does not read it at such
     * an open (the check does, and reports what is wrong), so a table that
     * cannot be read is taken as empty here.
     */
    static Table readForCheck(Storage storage, Qcow2Header header) throws IOException {
        long count = Integer.toUnsignedLong(header.nbSnapshots);
        long offset = header.snapshotsOffset;
        if (count > Qcow2Header.MAX_SNAPSHOTS || offset < 0 || (offset & (header.clusterSize() - 1)) != 0) {
            return new Table(List.of(), 0);
        }
        Checked c = readChecked(storage, header, offset, count, false);
        return c.error() != null ? new Table(List.of(), 0) : c.table();
    }

    /**
     * qemu's qcow2_do_read_snapshots for {@code count} entries at {@code offset}
     * (already validated as a table pointer). With {@code repair}, extra data
     * beyond {@link #MAX_EXTRA_DATA} bytes is cut and entries that would make
     * the table larger than {@link #MAX_TABLE_BYTES} are dropped, instead of
     * failing.
     */
    static Checked readChecked(Storage storage, Qcow2Header header, long offset, long count, boolean repair)
            throws IOException {
        List<Snapshot> out = new ArrayList<>();
        List<String> messages = new ArrayList<>();
        // one buffer for every header and the extra data we know: a garbage table of 65536 entries costs
        // its snapshot records, not a buffer per field
        ByteBuffer h = ByteBuffer.allocate(Qcow2Header.SNAPSHOT_HEADER_SIZE);
        long fileSize = storage.size();
        ByteBuffer extra = ByteBuffer.allocate(KNOWN_EXTRA_DATA);
        int extraDropped = 0;
        int discarded = 0;
        long off = offset;
        long tableLength = 0;
        for (long i = 0; i < count; i++) {
            long entryStart = off;
            tableLength = (tableLength + 7) & ~7L;
            off = (off + 7) & ~7L;
            long headerAt = off;
            storage.read(h.clear(), off);
            off += Qcow2Header.SNAPSHOT_HEADER_SIZE;
            long l1Offset = h.getLong(0);
            int l1Size = h.getInt(8);
            int idSize = Short.toUnsignedInt(h.getShort(12));
            int nameSize = Short.toUnsignedInt(h.getShort(14));
            long dateSec = Integer.toUnsignedLong(h.getInt(16));
            long dateNsec = Integer.toUnsignedLong(h.getInt(20));
            long vmClock = h.getLong(24);
            long vmState = Integer.toUnsignedLong(h.getInt(32));
            long extraSize = Integer.toUnsignedLong(h.getInt(36));
            long keptExtra = extraSize;
            if (extraSize > MAX_EXTRA_DATA) {
                if (!repair) {
                    return new Checked(null, 0, 0, messages, "Too much extra metadata in snapshot table entry " + i,
                            "You can force-remove this extra metadata with qemu-img check -r all");
                }
                messages.add("Discarding too much extra metadata in snapshot table entry " + i + " (" + extraSize
                        + " > " + MAX_EXTRA_DATA + ")");
                extraDropped++;
                keptExtra = MAX_EXTRA_DATA;
            }
            storage.read(extra.clear().limit((int) Math.min(keptExtra, KNOWN_EXTRA_DATA)), off);
            off += extraSize;
            long diskSize = header.size & ~511L;
            long icount = -1;
            if (keptExtra >= 8) {
                vmState = extra.getLong(0);
            }
            if (keptExtra >= 16) {
                diskSize = extra.getLong(8);
            }
            if (keptExtra >= 24) {
                icount = extra.getLong(16);
            }
            String id = string(storage, fileSize, off, idSize);
            off += idSize;
            String name = string(storage, fileSize, off, nameSize);
            off += nameSize;
            tableLength += Qcow2Header.SNAPSHOT_HEADER_SIZE + keptExtra + idSize + nameSize;
            if (tableLength > MAX_TABLE_BYTES || off - offset > Integer.MAX_VALUE) {
                if (!repair) {
                    return new Checked(null, 0, 0, messages, "Snapshot table is too big", "You can force-remove all "
                            + (count - i) + " overhanging snapshots with qemu-img check -r all");
                }
                messages.add("Discarding " + (count - i) + " overhanging snapshots (snapshot table is too big)");
                discarded = (int) (count - i);
                off = entryStart;
                break;
            }
            out.add(new Snapshot(id, name, l1Offset, l1Size, dateSec, dateNsec, vmClock, vmState, diskSize, icount,
                    headerAt, extraSize));
        }
        return new Checked(new Table(List.copyOf(out), off - offset), extraDropped, discarded, messages, null, null);
    }

    /**
     * The table as qemu 7.2 writes it (qcow2_write_snapshots): every entry
     * with at least the 24 bytes of extra data it knows (64-bit VM state
     * size, disk size, icount); unknown extra data (up to
     * {@link #MAX_EXTRA_DATA} bytes in all) is copied from the old entry.
     */
    static byte[] encode(Storage storage, List<Snapshot> snapshots) throws IOException {
        long size = 0;
        for (Snapshot s : snapshots) {
            size = (size + 7) & ~7L;
            size += Qcow2Header.SNAPSHOT_HEADER_SIZE + extraLength(s) + utf8(s.id()).length + utf8(s.name()).length;
        }
        ByteBuffer b = ByteBuffer.allocate(Math.toIntExact(size));
        for (Snapshot s : snapshots) {
            b.position((b.position() + 7) & ~7);
            byte[] id = utf8(s.id());
            byte[] name = utf8(s.name());
            byte[] extra = new byte[extraLength(s)];
            storage.read(ByteBuffer.wrap(extra, 0, (int) Math.min(s.extraDataSize(), extra.length)),
                    s.entryOffset() + Qcow2Header.SNAPSHOT_HEADER_SIZE);
            ByteBuffer.wrap(extra).putLong(0, s.vmStateSize()).putLong(8, s.diskSize()).putLong(16, s.icount());
            b.putLong(s.l1TableOffset()).putInt(s.l1Size()).putShort((short) id.length)
                    .putShort((short) name.length).putInt((int) s.dateSec()).putInt((int) s.dateNsec())
                    .putLong(s.vmClockNsec())
                    .putInt(Long.compareUnsigned(s.vmStateSize(), 0xffff_ffffL) <= 0 ? (int) s.vmStateSize() : 0)
                    .putInt(extra.length).put(extra).put(id).put(name);
        }
        return b.array();
    }

    private static int extraLength(Snapshot s) {
        return (int) Math.max(KNOWN_EXTRA_DATA, Math.min(s.extraDataSize(), MAX_EXTRA_DATA));
    }

    private static byte[] utf8(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    /**
     * A C string of {@code len} bytes at {@code at}, as qemu keeps it: up to
     * the first NUL. Read in small steps that stop there, and only within
     * the file (past its end the bytes are zeros): a hostile length costs
     * what the string really holds.
     */
    private static String string(Storage storage, long fileSize, long at, int len) throws IOException {
        long inFile = Math.max(0, Math.min(len, fileSize - at));
        if (inFile == 0) {
            return "";
        }
        byte[] step = new byte[(int) Math.min(inFile, 256)];
        java.io.ByteArrayOutputStream longer = null;
        for (long done = 0; done < inFile; ) {
            int n = (int) Math.min(step.length, inFile - done);
            storage.read(ByteBuffer.wrap(step, 0, n), at + done);
            int k = 0;
            while (k < n && step[k] != 0) {
                k++;
            }
            if (longer == null && (k < n || done + n == inFile)) {
                return new String(step, 0, k, StandardCharsets.UTF_8);
            }
            if (longer == null) {
                longer = new java.io.ByteArrayOutputStream();
            }
            longer.write(step, 0, k);
            if (k < n) {
                break;
            }
            done += n;
        }
        return longer.toString(StandardCharsets.UTF_8);
    }
}
