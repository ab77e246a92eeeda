package io.diskmorph.format.vhdx;

import io.diskmorph.image.CorruptImageException;
import io.diskmorph.image.UnsupportedFeatureException;
import io.diskmorph.storage.Storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;
import java.util.zip.CRC32C;

/**
 * The VHDX log ([MS-VHDX] 2.3), read, never replayed: the active sequence
 * (valid entries of the header's log GUID with consecutive sequence
 * numbers, the one whose head names its own first entry as the tail and has
 * the highest sequence number), and its writes as a list that {@link
 * Overlay} lays over the file, so that read-only commands see the image as
 * a replay would leave it while the file stays as it is.
 *
 * <p>Entries: a 64-byte header ("loge", CRC-32C over the whole entry, its
 * length, the tail, the sequence number, the descriptor count, the log
 * GUID, the flushed and last file offsets), descriptors of 32 bytes ("zero":
 * a range to zero; "desc": a 4 KiB sector whose first 8 and last 4 bytes
 * the descriptor holds, its other 4,084 bytes in a "data" sector that
 * follows the descriptors, stamped with the sequence number at both ends).
 */
final class VhdxLog {
    static final int SECTOR = 4096;
    private static final int SIG_ENTRY = 0x65676f6c; // "loge"
    private static final int SIG_ZERO = 0x6f72657a; // "zero"
    private static final int SIG_DESC = 0x63736564; // "desc"
    private static final int SIG_DATA = 0x61746164; // "data"
    /** Larger logs are refused rather than read through (qemu and Hyper-V make 1 MiB logs). */
    static final long MAX_LOG_BYTES = 64L << 20;
    /** Descriptors kept in memory at most (a 1 MiB log holds a few hundred). */
    static final int MAX_WRITES = 1 << 18;

    /** One write of the sequence: {@code length} bytes at {@code fileOffset}; zeros, or a sector from the log. */
    record Write(long fileOffset, long length, long logSectorAt, long leading, int trailing) {
        boolean zero() {
            return logSectorAt < 0;
        }
    }

    /** The active sequence: its writes in order, the file length it leaves, its entry count. */
    record Sequence(List<Write> writes, long lastFileOffset, long flushedFileOffset, int entries,
                    long headSequence) {
    }

    private VhdxLog() {
    }

    /**
     * The active sequence of the log the header names, or null when the log
     * holds none (qemu then opens the image as it is, and so does this).
     */
    static Sequence find(Storage file, VhdxLayout l) throws IOException {
        long length = l.logLength;
        if (length == 0 || length % VhdxLayout.MIB != 0 || l.logOffset % VhdxLayout.MIB != 0) {
            throw l.corrupt("VHDX header", -1, "the log is active, but its region (" + length + " bytes at offset "
                    + l.logOffset + ") is not a whole number of MiB at a MiB boundary");
        }
        if (length > MAX_LOG_BYTES) {
            throw new UnsupportedFeatureException(l.name + ": the VHDX log is active and is " + length + " bytes; "
                    + "logs over " + MAX_LOG_BYTES + " bytes are not read through");
        }
        int slots = (int) (length / SECTOR);
        BitSet started = new BitSet(slots);
        long[] budget = {4 * length + VhdxLayout.MIB}; // bytes hashed at most: hostile entries overlapping
        Sequence best = null;
        for (int s = 0; s < slots; s++) {
            if (started.get(s)) {
                continue;
            }
            Entry first = entry(file, l, s, budget);
            if (first == null) {
                continue;
            }
            // follow the chain: each entry right after the previous one (wrapping), sequence number + 1
            List<Entry> chain = new ArrayList<>();
            chain.add(first);
            started.set(s);
            Entry e = first;
            while (chain.size() < slots) {
                int next = (int) ((e.slot + e.length / SECTOR) % slots);
                Entry n = entry(file, l, next, budget);
                if (n == null || n.sequence != e.sequence + 1) {
                    break;
                }
                chain.add(n);
                started.set(next);
                e = n;
            }
            Entry head = chain.getLast();
            if (head.tail != (long) first.slot * SECTOR) {
                continue; // a part of a sequence: its head names another tail
            }
            if (best == null || Long.compareUnsigned(head.sequence, best.headSequence()) > 0) {
                best = sequence(file, l, chain);
            }
        }
        if (best != null && Long.compareUnsigned(best.flushedFileOffset(), file.size()) > 0) {
            throw l.corrupt("VHDX log", l.logOffset, "the file (" + file.size() + " bytes) is shorter than the "
                    + "log's flushed file offset " + Long.toUnsignedString(best.flushedFileOffset())
                    + ": writes the log relies on are missing");
        }
        return best;
    }

    private record Entry(int slot, long length, long tail, long sequence, int descriptors, long flushed,
                         long last) {
    }

    /** The entry at {@code slot} of the log if it is valid (signature, log GUID, length, CRC-32C), else null. */
    private static Entry entry(Storage file, VhdxLayout l, int slot, long[] budget) throws IOException {
        long at = l.logOffset + (long) slot * SECTOR;
        ByteBuffer h = file.readBytes(at, 64).order(ByteOrder.LITTLE_ENDIAN);
        if (h.limit() < 64 || h.getInt(0) != SIG_ENTRY || !Guid.read(h, 32).equals(l.logGuid)) {
            return null;
        }
        long length = Integer.toUnsignedLong(h.getInt(8));
        long tail = Integer.toUnsignedLong(h.getInt(12));
        long descriptors = Integer.toUnsignedLong(h.getInt(24));
        if (length < SECTOR || length % SECTOR != 0 || length > l.logLength || tail % SECTOR != 0
                || tail >= l.logLength || descriptors > length / 32) {
            return null;
        }
        // the CRC covers the whole entry, which may wrap around the end of the log
        budget[0] -= length;
        if (budget[0] < 0) {
            throw l.corrupt("VHDX log", at, "log entries overlap each other beyond any valid log");
        }
        CRC32C crc = new CRC32C();
        ByteBuffer buf = ByteBuffer.allocate(SECTOR);
        int slots = (int) (l.logLength / SECTOR);
        for (long i = 0; i < length / SECTOR; i++) {
            buf.clear();
            file.read(buf, l.logOffset + ((slot + i) % slots) * SECTOR);
            if (i == 0) {
                buf.putInt(4, 0);
            }
            crc.update(buf.array(), 0, SECTOR);
        }
        if ((int) crc.getValue() != h.getInt(4)) {
            return null;
        }
        return new Entry(slot, length, tail, h.getLong(16), (int) descriptors, h.getLong(48), h.getLong(56));
    }

    /** The writes of a chain, validated against each entry's sequence number. */
    private static Sequence sequence(Storage file, VhdxLayout l, List<Entry> chain) throws IOException {
        int slots = (int) (l.logLength / SECTOR);
        List<Write> writes = new ArrayList<>();
        long last = 0;
        for (Entry e : chain) {
            long descriptorBytes = ((64L + 32L * e.descriptors + SECTOR - 1) / SECTOR) * SECTOR;
            long dataSectors = 0;
            if (writes.size() + e.descriptors > MAX_WRITES) {
                throw new UnsupportedFeatureException(l.name + ": the VHDX log's active sequence holds more than "
                        + MAX_WRITES + " descriptors; logs this large are not read through");
            }
            for (int d = 0; d < e.descriptors; d++) {
                long off = 64L + 32L * d;
                ByteBuffer desc = read(file, l, e.slot, off, 32, slots);
                int sig = desc.getInt(0);
                long fileOffset = desc.getLong(16);
                long seq = desc.getLong(24);
                if (seq != e.sequence || (sig != SIG_ZERO && sig != SIG_DESC)) {
                    throw l.corrupt("VHDX log", l.logOffset + (long) e.slot * SECTOR, "entry "
                            + Long.toUnsignedString(e.sequence) + ": descriptor " + d + " is damaged");
                }
                if (sig == SIG_ZERO) {
                    long len = desc.getLong(8);
                    if (fileOffset % SECTOR != 0 || len % SECTOR != 0 || len < 0 || fileOffset < 0
                            || fileOffset > Long.MAX_VALUE - len) {
                        throw l.corrupt("VHDX log", -1, "a zero descriptor of " + len + " bytes at "
                                + Long.toUnsignedString(fileOffset));
                    }
                    writes.add(new Write(fileOffset, len, -1, 0, 0));
                } else {
                    long sectorOff = descriptorBytes + dataSectors * SECTOR;
                    if (sectorOff + SECTOR > e.length || fileOffset % SECTOR != 0 || fileOffset < 0) {
                        throw l.corrupt("VHDX log", -1, "entry " + Long.toUnsignedString(e.sequence) + ": data "
                                + "descriptor " + d + " has no data sector, or an unaligned file offset");
                    }
                    ByteBuffer data = read(file, l, e.slot, sectorOff, SECTOR, slots);
                    long seq2 = (Integer.toUnsignedLong(data.getInt(4)) << 32)
                            | Integer.toUnsignedLong(data.getInt(SECTOR - 4));
                    if (data.getInt(0) != SIG_DATA || seq2 != e.sequence) {
                        throw l.corrupt("VHDX log", -1, "entry " + Long.toUnsignedString(e.sequence)
                                + ": data sector " + dataSectors + " is damaged");
                    }
                    long at = l.logOffset + ((e.slot + sectorOff / SECTOR) % slots) * SECTOR;
                    writes.add(new Write(fileOffset, SECTOR, at, desc.getLong(8), desc.getInt(4)));
                    dataSectors++;
                }
            }
            last = e.last;
        }
        return new Sequence(List.copyOf(writes), last, chain.getLast().flushed, chain.size(),
                chain.getLast().sequence);
    }

    private static ByteBuffer read(Storage file, VhdxLayout l, int slot, long offsetInEntry, int n, int slots)
            throws IOException {
        long s = (slot + offsetInEntry / SECTOR) % slots;
        return file.readBytes(l.logOffset + s * SECTOR + offsetInEntry % SECTOR, n).order(ByteOrder.LITTLE_ENDIAN);
    }

    /**
     * The file as the log's replay would leave it, read only: the
     * sequence's writes are folded once into non-overlapping pieces (later
     * writes cut earlier ones), each read is patched from the pieces it
     * meets, and the file is as long as the head entry's last file offset
     * at least.
     */
    static final class Overlay implements Storage {
        /** What one range of the file reads after the replay: zeros, or (part of) a sector of the log. */
        private record Piece(long end, Write write) {
        }

        private final Storage file;
        private final java.util.TreeMap<Long, Piece> pieces = new java.util.TreeMap<>();
        private final long size;

        Overlay(Storage file, Sequence s) throws IOException {
            this.file = file;
            this.size = Math.max(file.size(), s.lastFileOffset());
            for (Write w : s.writes()) {
                long from = w.fileOffset();
                long to = w.fileOffset() + w.length();
                var before = pieces.floorEntry(from);
                if (before != null && before.getValue().end() > from) {
                    pieces.put(before.getKey(), new Piece(from, before.getValue().write()));
                    if (before.getValue().end() > to) {
                        pieces.put(to, before.getValue());
                    }
                }
                var inside = pieces.subMap(from, true, to, false);
                var last = inside.isEmpty() ? null : inside.lastEntry();
                if (last != null && last.getValue().end() > to) {
                    pieces.put(to, last.getValue());
                }
                inside.clear();
                pieces.put(from, new Piece(to, w));
            }
        }

        @Override
        public void read(ByteBuffer dst, long position) throws IOException {
            int start = dst.position();
            int n = dst.remaining();
            file.read(dst, position);
            long end = position + n;
            var first = pieces.floorEntry(position);
            Long from = first != null && first.getValue().end() > position ? first.getKey() : position;
            for (var e : pieces.subMap(from, true, end, false).entrySet()) {
                long a = Math.max(position, e.getKey());
                long b = Math.min(end, e.getValue().end());
                if (a >= b) {
                    continue;
                }
                Write w = e.getValue().write();
                int into = start + (int) (a - position);
                int len = (int) (b - a);
                if (w.zero()) {
                    for (int i = 0; i < len; i++) {
                        dst.put(into + i, (byte) 0);
                    }
                } else {
                    ByteBuffer sector = file.readBytes(w.logSectorAt(), SECTOR).order(ByteOrder.LITTLE_ENDIAN);
                    sector.putLong(0, w.leading());
                    sector.putInt(SECTOR - 4, w.trailing());
                    dst.put(into, sector, (int) (a - w.fileOffset()), len);
                }
            }
        }

        @Override
        public void write(ByteBuffer src, long position) throws IOException {
            throw new CorruptImageException("VHDX log", -1, "internal: the log overlay is read only");
        }

        @Override
        public void sync() {
        }

        @Override
        public long size() {
            return size;
        }

        @Override
        public void truncate(long size) throws IOException {
            throw new CorruptImageException("VHDX log", -1, "internal: the log overlay is read only");
        }

        @Override
        public long nextData(long from) throws IOException {
            return from; // the writes may fill holes: no hole is promised
        }

        @Override
        public long nextHole(long from) {
            return size;
        }

        @Override
        public void punchHole(long offset, long length) throws IOException {
            throw new CorruptImageException("VHDX log", -1, "internal: the log overlay is read only");
        }

        @Override
        public long allocatedBytes() throws IOException {
            return file.allocatedBytes();
        }

        @Override
        public boolean isReadOnly() {
            return true;
        }

        @Override
        public String name() {
            return file.name();
        }

        @Override
        public void close() {
            // the image closes its file
        }
    }
}
