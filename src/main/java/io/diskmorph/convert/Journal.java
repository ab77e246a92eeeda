package io.diskmorph.convert;

import io.diskmorph.image.CommitRecord;
import io.diskmorph.image.CorruptImageException;
import io.diskmorph.storage.FileIdentity;
import io.diskmorph.storage.Storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.zip.CRC32C;

/**
 * The rollback journal of an in-place conversion (a sidecar file next to the
 * image, like SQLite's "-journal"). It holds the original bytes of every
 * range of the original file that the conversion overwrites, the original
 * length, the commit record (the write that switches the file to the target
 * format, made last), and what identifies the file it belongs to. Written and
 * synced before the image is touched; immutable afterwards except for the
 * state sector.
 *
 * <pre>
 * sector 0   state:  "DMJSTATE" u32 version u32 mode u32 flags u64 committedLength
 *                    u64 committedMtimeNanos u32 crc32c(previous bytes)
 * sector 1.. body:   "DMJBODY2" u64 bodyLength u64 originalLength u64 finalLength
 *                    str sourceFormat str targetFormat
 *                    u64 device u64 inode u64 birthNanos          (the image file; see FileIdentity)
 *                    u32 commitCount, commitCount x (u64 offset u32 length, bytes)
 *                                                                  (the last write is the commit point)
 *                    u32 witnessCount, witnessCount x (u64 offset u32 length u32 crc32c)
 *                                                                  (ranges the conversion never writes)
 *                    u32 rangeCount, rangeCount x (u64 offset u64 length u64 dataOffset)
 *                    ... saved bytes (each range at dataOffset, 512-aligned) ...
 *                    (dataOffset 0: the range was a hole in the file; nothing saved)
 *                    u32 crc32c(body without this field)
 * </pre>
 * All integers little endian. A body that fails its checksum means the
 * journal was torn while being written, so the image was not touched yet.
 * Version 1 bodies ("DMJBODY1": no identity, no witnesses, a 512-byte target
 * header sector at offset 0 in place of the commit list) are still read, so a
 * journal left by an earlier release still recovers.
 */
final class Journal {
    static final int SECTOR = 512;
    private static final byte[] STATE_MAGIC = "DMJSTATE".getBytes(StandardCharsets.US_ASCII);
    private static final byte[] BODY_MAGIC_V1 = "DMJBODY1".getBytes(StandardCharsets.US_ASCII);
    private static final byte[] BODY_MAGIC_V2 = "DMJBODY2".getBytes(StandardCharsets.US_ASCII);
    private static final int VERSION = 1;
    private static final int MAX_STRING = 64;
    /** Bound on ranges read from a journal file (hostile or damaged input). */
    private static final int MAX_RANGES = 1 << 24;
    /** Bounds on the commit record and the witnesses (they are read in one piece). */
    private static final int MAX_COMMIT_BYTES = 1 << 16;
    private static final int MAX_WITNESSES = 64;
    /** The body header is read in one piece of at most this size. */
    private static final int MAX_BODY_HEADER = 1 << 20;

    static final int MODE_CONVERT = 1;
    static final int MODE_ROLLBACK = 2;
    static final int FLAG_KEEP_ROLLBACK = 1;

    /**
     * One saved range: original bytes of [offset, offset+length) are at
     * dataOffset in the journal, or, with dataOffset 0, the range was a hole
     * (reads as zeros, restored by punching a hole).
     */
    record Range(long offset, long length, long dataOffset) {
        long end() {
            return offset + length;
        }

        boolean hole() {
            return dataOffset == 0;
        }
    }

    /** A range the conversion never writes, and the checksum of what it held when the journal was made. */
    record Witness(long offset, int length, int crc) {
    }

    /** The mutable state sector. */
    record State(int mode, int flags, long committedLength, long committedMtimeNanos) {
        boolean keepRollback() {
            return (flags & FLAG_KEEP_ROLLBACK) != 0;
        }
    }

    final long originalLength;
    final long finalLength;
    final String sourceFormat;
    final String targetFormat;
    /** The image file the journal was written for; null in a version-1 journal. */
    final FileIdentity identity;
    /** The commit record; its last write is the commit point. */
    final List<CommitRecord.Write> commit;
    final List<Witness> witnesses;
    final List<Range> ranges;

    Journal(long originalLength, long finalLength, String sourceFormat, String targetFormat, FileIdentity identity,
            List<CommitRecord.Write> commit, List<Witness> witnesses, List<Range> ranges) {
        if (commit.isEmpty()) {
            throw new IllegalArgumentException("a journal needs a commit record");
        }
        this.originalLength = originalLength;
        this.finalLength = finalLength;
        this.sourceFormat = sourceFormat;
        this.targetFormat = targetFormat;
        this.identity = identity;
        this.commit = List.copyOf(commit);
        this.witnesses = List.copyOf(witnesses);
        this.ranges = List.copyOf(ranges);
    }

    /** The bytes {@link #restore} puts back: every saved range, holes included (they are punched). */
    long savedBytes() {
        long n = 0;
        for (Range r : ranges) {
            n += r.length;
        }
        return n;
    }

    /**
     * Splits the ranges to save at the file's data/hole boundaries: holes
     * need no saved bytes. Each segment is {start, end, 1 data | 0 hole}.
     */
    static List<long[]> segments(Storage image, List<long[]> ranges) throws IOException {
        List<long[]> out = new ArrayList<>();
        for (long[] r : ranges) {
            long pos = r[0];
            while (pos < r[1]) {
                long data = Math.min(image.nextData(pos), r[1]);
                if (data > pos) {
                    out.add(new long[]{pos, data, 0}); // hole
                    pos = data;
                    continue;
                }
                long hole = Math.min(image.nextHole(pos), r[1]);
                out.add(new long[]{pos, hole, 1});
                pos = hole;
            }
        }
        return out;
    }

    /** Size of the journal file for these segments (see {@link #segments}). */
    static long fileSize(List<long[]> segments, String sourceFormat, String targetFormat, List<CommitRecord.Write> commit,
                         int witnessCount) {
        long header = bodyHeaderSize(segments.size(), sourceFormat, targetFormat, commit, witnessCount);
        long pos = SECTOR + roundUp(header);
        for (long[] r : segments) {
            if (r[2] != 0) {
                pos += roundUp(r[1] - r[0]);
            }
        }
        return pos + SECTOR;
    }

    private static long bodyHeaderSize(int rangeCount, String src, String tgt, List<CommitRecord.Write> commit,
                                       int witnessCount) {
        long n = 8 + 8 + 8 + 8 + 4 + src.getBytes(StandardCharsets.UTF_8).length + 4
                + tgt.getBytes(StandardCharsets.UTF_8).length + 24 + 4;
        for (CommitRecord.Write c : commit) {
            n += 12 + c.length();
        }
        return n + 4 + 16L * witnessCount + 4 + 24L * rangeCount;
    }

    private static long roundUp(long n) {
        return (n + SECTOR - 1) / SECTOR * SECTOR;
    }

    /**
     * Writes a complete journal: state sector, body with the original bytes of
     * {@code segments} (from {@link #segments}) read from {@code image}, the
     * checksums of the witness ranges as the image holds them now, checksum;
     * then syncs it. {@code witnessRanges} are {offset, length} pairs.
     */
    static Journal write(Storage journal, Storage image, long originalLength, long finalLength, String sourceFormat,
                         String targetFormat, FileIdentity identity, List<CommitRecord.Write> commit,
                         List<long[]> witnessRanges, List<long[]> saveRanges, int flags) throws IOException {
        List<Witness> witnesses = new ArrayList<>();
        for (long[] w : witnessRanges) {
            witnesses.add(new Witness(w[0], (int) w[1], crcOf(image, w[0], (int) w[1])));
        }
        long headerSize = bodyHeaderSize(saveRanges.size(), sourceFormat, targetFormat, commit, witnesses.size());
        if (headerSize > MAX_BODY_HEADER - SECTOR) {
            // only a conversion with hundreds of thousands of scattered overwritten ranges gets here
            throw new IllegalStateException("journal header of " + headerSize + " bytes exceeds its bound");
        }
        long dataStart = SECTOR + roundUp(headerSize);
        List<Range> ranges = new ArrayList<>(saveRanges.size());
        long pos = dataStart;
        for (long[] r : saveRanges) {
            boolean data = r[2] != 0;
            ranges.add(new Range(r[0], r[1] - r[0], data ? pos : 0));
            if (data) {
                pos += roundUp(r[1] - r[0]);
            }
        }
        long crcAt = pos;
        long bodyLength = crcAt + 4 - SECTOR;
        CRC32C crc = new CRC32C();

        ByteBuffer h = ByteBuffer.allocate(Math.toIntExact(roundUp(headerSize))).order(ByteOrder.LITTLE_ENDIAN);
        h.put(BODY_MAGIC_V2).putLong(bodyLength).putLong(originalLength).putLong(finalLength);
        putString(h, sourceFormat);
        putString(h, targetFormat);
        h.putLong(identity.device()).putLong(identity.inode()).putLong(identity.birthNanos());
        h.putInt(commit.size());
        for (CommitRecord.Write c : commit) {
            h.putLong(c.offset()).putInt(c.length()).put(c.bytes());
        }
        h.putInt(witnesses.size());
        for (Witness w : witnesses) {
            h.putLong(w.offset).putInt(w.length).putInt(w.crc);
        }
        h.putInt(ranges.size());
        for (Range r : ranges) {
            h.putLong(r.offset).putLong(r.length).putLong(r.dataOffset);
        }
        h.position(0);
        crc.update(h.duplicate());
        journal.write(h, SECTOR);

        ByteBuffer buf = ByteBuffer.allocate(1 << 20);
        for (Range r : ranges) {
            if (r.hole()) {
                continue;
            }
            long done = 0;
            long padded = roundUp(r.length);
            while (done < padded) {
                int n = (int) Math.min(buf.capacity(), padded - done);
                buf.clear().limit(n);
                int real = (int) Math.max(0, Math.min(n, r.length - done));
                image.read(buf.slice(0, real), r.offset + done);
                Arrays.fill(buf.array(), real, n, (byte) 0);
                buf.position(0).limit(n);
                crc.update(buf.duplicate());
                journal.write(buf, r.dataOffset + done);
                done += n;
            }
        }
        ByteBuffer tail = ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt(0, (int) crc.getValue());
        journal.write(tail, crcAt);
        writeState(journal, new State(MODE_CONVERT, flags, 0, 0), false);
        journal.sync();
        return new Journal(originalLength, finalLength, sourceFormat, targetFormat, identity, commit, witnesses,
                ranges);
    }

    static int crcOf(Storage image, long offset, int length) throws IOException {
        CRC32C crc = new CRC32C();
        crc.update(image.readBytes(offset, length));
        return (int) crc.getValue();
    }

    private static void putString(ByteBuffer b, String s) {
        byte[] bytes = s.getBytes(StandardCharsets.UTF_8);
        b.putInt(bytes.length).put(bytes);
    }

    /** Rewrites the state sector (one 512-byte write), optionally syncing. */
    static void writeState(Storage journal, State s, boolean sync) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(SECTOR).order(ByteOrder.LITTLE_ENDIAN);
        b.put(STATE_MAGIC).putInt(VERSION).putInt(s.mode).putInt(s.flags).putLong(s.committedLength)
                .putLong(s.committedMtimeNanos);
        CRC32C crc = new CRC32C();
        crc.update(b.array(), 0, b.position());
        b.putInt((int) crc.getValue());
        b.clear();
        journal.write(b, 0);
        if (sync) {
            journal.sync();
        }
    }

    /** Reads the state sector; null when it is torn or missing. */
    static State readState(Storage journal) throws IOException {
        if (journal.size() < SECTOR) {
            return null;
        }
        ByteBuffer b = journal.readBytes(0, SECTOR).order(ByteOrder.LITTLE_ENDIAN);
        byte[] magic = new byte[8];
        b.get(magic);
        if (!Arrays.equals(magic, STATE_MAGIC) || b.getInt() != VERSION) {
            return null;
        }
        int mode = b.getInt();
        int flags = b.getInt();
        long len = b.getLong();
        long mtime = b.getLong();
        CRC32C crc = new CRC32C();
        crc.update(b.array(), 0, b.position());
        if (b.getInt() != (int) crc.getValue() || (mode != MODE_CONVERT && mode != MODE_ROLLBACK)) {
            return null;
        }
        return new State(mode, flags, len, mtime);
    }

    /**
     * Reads and verifies the body. Returns null when the journal is torn
     * (incomplete or failing its checksum): then the image was never touched.
     */
    static Journal read(Storage journal) throws IOException {
        long size = journal.size();
        if (size < 2L * SECTOR) {
            return null;
        }
        ByteBuffer first = journal.readBytes(SECTOR, (int) Math.min(size - SECTOR, MAX_BODY_HEADER))
                .order(ByteOrder.LITTLE_ENDIAN);
        byte[] magic = new byte[8];
        first.get(magic);
        boolean v1 = Arrays.equals(magic, BODY_MAGIC_V1);
        if (!v1 && !Arrays.equals(magic, BODY_MAGIC_V2)) {
            return null;
        }
        long bodyLength = first.getLong();
        if (bodyLength < 8 || bodyLength > size - SECTOR) {
            return null;
        }
        // checksum the whole body before trusting any field in it
        CRC32C crc = new CRC32C();
        ByteBuffer buf = ByteBuffer.allocate(1 << 20);
        long end = SECTOR + bodyLength - 4;
        for (long pos = SECTOR; pos < end; ) {
            int n = (int) Math.min(buf.capacity(), end - pos);
            buf.clear().limit(n);
            journal.read(buf, pos);
            buf.flip();
            crc.update(buf);
            pos += n;
        }
        int stored = journal.readBytes(end, 4).order(ByteOrder.LITTLE_ENDIAN).getInt();
        if (stored != (int) crc.getValue()) {
            return null;
        }
        try {
            long originalLength = first.getLong();
            long finalLength = first.getLong();
            String src = getString(first);
            String tgt = getString(first);
            FileIdentity identity = null;
            List<CommitRecord.Write> commit = new ArrayList<>();
            List<Witness> witnesses = new ArrayList<>();
            if (v1) {
                byte[] header = new byte[SECTOR];
                first.get(header);
                commit.add(new CommitRecord.Write(0, header));
            } else {
                identity = new FileIdentity(first.getLong(), first.getLong(), first.getLong(), 1);
                int n = first.getInt();
                long total = 0;
                if (n <= 0 || n > 16) {
                    throw new CorruptImageException("conversion journal", SECTOR, "commit record of " + n + " writes");
                }
                for (int i = 0; i < n; i++) {
                    long offset = first.getLong();
                    int length = first.getInt();
                    total += length;
                    if (offset < 0 || length <= 0 || total > MAX_COMMIT_BYTES) {
                        throw new CorruptImageException("conversion journal", SECTOR, "commit write " + i);
                    }
                    byte[] b = new byte[length];
                    first.get(b);
                    commit.add(new CommitRecord.Write(offset, b));
                }
                int w = first.getInt();
                if (w < 0 || w > MAX_WITNESSES) {
                    throw new CorruptImageException("conversion journal", SECTOR, "witness count " + w);
                }
                for (int i = 0; i < w; i++) {
                    Witness wi = new Witness(first.getLong(), first.getInt(), first.getInt());
                    if (wi.offset < 0 || wi.length <= 0 || wi.length > MAX_COMMIT_BYTES) {
                        throw new CorruptImageException("conversion journal", SECTOR, "witness " + i);
                    }
                    witnesses.add(wi);
                }
            }
            int count = first.getInt();
            if (count < 0 || count > MAX_RANGES) {
                throw new CorruptImageException("conversion journal", SECTOR, "range count " + count);
            }
            List<Range> ranges = new ArrayList<>(count);
            ByteBuffer table = journal.readBytes(SECTOR + first.position(), Math.multiplyExact(count, 24))
                    .order(ByteOrder.LITTLE_ENDIAN);
            for (int i = 0; i < count; i++) {
                Range r = new Range(table.getLong(), table.getLong(), table.getLong());
                if (r.offset < 0 || r.length <= 0
                        || (!r.hole() && (r.dataOffset < SECTOR || Math.addExact(r.dataOffset, r.length) > end))
                        || Math.addExact(r.offset, r.length) > originalLength) {
                    throw new CorruptImageException("conversion journal", SECTOR, "range " + i + " out of bounds");
                }
                ranges.add(r);
            }
            return new Journal(originalLength, finalLength, src, tgt, identity, commit, witnesses, ranges);
        } catch (java.nio.BufferUnderflowException | ArithmeticException | IllegalArgumentException e) {
            throw new CorruptImageException("conversion journal", SECTOR, "truncated header");
        }
    }

    private static String getString(ByteBuffer b) throws CorruptImageException {
        int n = b.getInt();
        if (n < 0 || n > MAX_STRING) {
            throw new CorruptImageException("conversion journal", SECTOR, "bad format name length " + n);
        }
        byte[] s = new byte[n];
        b.get(s);
        return new String(s, StandardCharsets.UTF_8);
    }

    /**
     * Copies every saved range back into the image; holes are punched again
     * (does not sync). Tells {@code progress} (phase "restore") the bytes put
     * back, per MiB.
     */
    void restore(Storage journal, Storage image, io.diskmorph.image.PhaseProgress progress) throws IOException {
        ByteBuffer buf = ByteBuffer.allocate(1 << 20);
        long total = savedBytes();
        long restored = 0;
        progress.update("restore", 0, total);
        for (Range r : ranges) {
            if (r.hole()) {
                long end = Math.min(r.end(), image.size());
                if (end > r.offset) {
                    image.punchHole(r.offset, end - r.offset);
                }
                restored += r.length;
                progress.update("restore", restored, total);
                continue;
            }
            for (long done = 0; done < r.length; ) {
                int n = (int) Math.min(buf.capacity(), r.length - done);
                buf.clear().limit(n);
                journal.read(buf, r.dataOffset + done);
                buf.flip();
                image.write(buf, r.offset + done);
                done += n;
                restored += n;
                progress.update("restore", restored, total);
            }
        }
        progress.update("restore", total, total);
    }

    /** The commit point: the last write of the commit record. */
    CommitRecord.Write commitPoint() {
        return commit.get(commit.size() - 1);
    }

    /** True when the image holds the commit point's bytes: the switch happened. */
    boolean committed(Storage image) throws IOException {
        return holds(image, commitPoint().offset(), commitPoint().bytes());
    }

    /**
     * Whether the image holds {@code bytes} at {@code offset}; past the end
     * of the file it holds zeros, as storages read there (a trailer's
     * removal commits with zeros over a sector the final cut drops).
     */
    static boolean holds(Storage image, long offset, byte[] bytes) throws IOException {
        long size = image.size();
        if (offset >= size) {
            return ToRaw.allZero(bytes, 0, bytes.length);
        }
        int inFile = (int) Math.min(bytes.length, size - offset);
        byte[] now = new byte[inFile];
        image.readBytes(offset, inFile).get(now);
        return Arrays.equals(now, 0, inFile, bytes, 0, inFile) && ToRaw.allZero(bytes, inFile, bytes.length);
    }

    /**
     * The bytes [offset, offset+length) held before the conversion, from the
     * saved ranges (zeros for a saved hole); null when the range was not
     * saved entirely (past the original end, or never overwritten).
     */
    byte[] originalBytes(Storage journal, long offset, int length) throws IOException {
        byte[] out = new byte[length];
        long covered = 0;
        for (Range r : ranges) {
            long from = Math.max(r.offset, offset);
            long to = Math.min(r.end(), offset + length);
            if (from >= to) {
                continue;
            }
            covered += to - from;
            if (!r.hole()) {
                journal.read(ByteBuffer.wrap(out, (int) (from - offset), (int) (to - from)),
                        r.dataOffset + (from - r.offset));
            }
        }
        return covered == length ? out : null;
    }
}
