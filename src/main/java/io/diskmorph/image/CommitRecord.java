package io.diskmorph.image;

import io.diskmorph.storage.Storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.List;

/**
 * The writes that make a file the target format, made after everything
 * else is durable: for qcow2 and QED the first header sector at offset 0;
 * for formats to come a footer at the end of the file, or the newer of two
 * headers. The last write is the commit point: before it the file is the
 * source (or nothing, for create), after it the target. {@link #apply} is the
 * one header switch, used by create and by in-place conversion; the in-place
 * journal stores the record so that recovery can tell which side of the
 * commit point a crash fell on.
 */
public record CommitRecord(List<Write> writes) {
    /** Bytes at a file offset. */
    public record Write(long offset, byte[] bytes) {
        public Write {
            if (offset < 0 || bytes.length == 0) {
                throw new IllegalArgumentException("commit write at " + offset + " of " + bytes.length + " bytes");
            }
            bytes = bytes.clone();
        }

        @Override
        public byte[] bytes() {
            return bytes.clone();
        }

        public long end() {
            return offset + bytes.length;
        }

        public int length() {
            return bytes.length;
        }

        @Override
        public boolean equals(Object o) {
            return o instanceof Write w && w.offset == offset && Arrays.equals(w.bytes, bytes);
        }

        @Override
        public int hashCode() {
            return Long.hashCode(offset) * 31 + Arrays.hashCode(bytes);
        }
    }

    public CommitRecord {
        if (writes.isEmpty()) {
            throw new IllegalArgumentException("a commit record needs a write");
        }
        writes = List.copyOf(writes);
    }

    private static final int SECTOR = 512;

    /**
     * A header zone that starts at offset 0 and switches with its first
     * sector (qcow2, QED): the bytes past the first sector are written now
     * through {@code space} (they lie in the target's reserved zone, so they
     * are ordinary metadata written before the switch), and the record is
     * the first sector, one write the disk makes atomically.
     */
    public static CommitRecord headerSector(byte[] zone, HostSpace space) throws IOException {
        byte[] padded = Arrays.copyOf(zone, Math.max(SECTOR, (zone.length + SECTOR - 1) / SECTOR * SECTOR));
        if (padded.length > SECTOR) {
            space.write(SECTOR, ByteBuffer.wrap(padded, SECTOR, padded.length - SECTOR));
        }
        return new CommitRecord(List.of(new Write(0, Arrays.copyOf(padded, SECTOR))));
    }

    /** The last write: once it is durable, the file is the target. */
    public Write commitPoint() {
        return writes.get(writes.size() - 1);
    }

    /** Bytes in all writes. */
    public long bytes() {
        long n = 0;
        for (Write w : writes) {
            n += w.length();
        }
        return n;
    }

    /** The switch: each write in order, each made durable before the next. */
    public void apply(Storage storage) throws IOException {
        for (Write w : writes) {
            storage.write(ByteBuffer.wrap(w.bytes), w.offset);
            storage.sync();
        }
    }
}
