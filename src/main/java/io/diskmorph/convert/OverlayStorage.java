package io.diskmorph.convert;

import io.diskmorph.storage.Storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.List;

/**
 * A read-only view of the image as it was before the conversion: ranges the
 * conversion overwrites are served from the journal. The source image is read
 * through this view while the target is written, so write order never
 * matters for what the source reads.
 */
final class OverlayStorage implements Storage {
    private final Storage image;
    private final Storage journal;
    private final List<Journal.Range> ranges; // sorted, disjoint
    private final long originalLength;

    OverlayStorage(Storage image, Storage journal, List<Journal.Range> ranges, long originalLength) {
        this.image = image;
        this.journal = journal;
        this.ranges = ranges;
        this.originalLength = originalLength;
    }

    @Override
    public void read(ByteBuffer dst, long position) throws IOException {
        long pos = position;
        while (dst.hasRemaining()) {
            if (pos >= originalLength) {
                while (dst.hasRemaining()) {
                    dst.put((byte) 0); // past the original end the source saw zeros
                }
                return;
            }
            int idx = firstEndingAfter(pos);
            Journal.Range r = idx < ranges.size() ? ranges.get(idx) : null;
            int n;
            if (r != null && r.offset() <= pos) {
                n = (int) Math.min(dst.remaining(), r.end() - pos);
                ByteBuffer part = dst.slice(dst.position(), n);
                if (r.hole()) {
                    while (part.hasRemaining()) {
                        part.put((byte) 0);
                    }
                } else {
                    journal.read(part, r.dataOffset() + (pos - r.offset()));
                }
            } else {
                long limit = Math.min(originalLength, r != null ? r.offset() : Long.MAX_VALUE);
                n = (int) Math.min(dst.remaining(), limit - pos);
                image.read(dst.slice(dst.position(), n), pos);
            }
            dst.position(dst.position() + n);
            pos += n;
        }
    }

    /** Index of the first range whose end is after pos. */
    private int firstEndingAfter(long pos) {
        int lo = 0;
        int hi = ranges.size();
        while (lo < hi) {
            int mid = (lo + hi) >>> 1;
            if (ranges.get(mid).end() <= pos) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        return lo;
    }

    @Override
    public void write(ByteBuffer src, long position) throws IOException {
        throw new IOException("the source view of a conversion is read-only");
    }

    @Override
    public void sync() {
    }

    @Override
    public long size() {
        return originalLength;
    }

    @Override
    public void truncate(long size) throws IOException {
        throw new IOException("the source view of a conversion is read-only");
    }

    /**
     * The file's data and holes as they were: saved ranges answer from the
     * journal (data, or a hole), everything else from the image.
     */
    @Override
    public long nextData(long from) throws IOException {
        return next(from, true);
    }

    @Override
    public long nextHole(long from) throws IOException {
        return next(from, false);
    }

    private long next(long from, boolean data) throws IOException {
        long pos = from;
        while (pos < originalLength) {
            int idx = firstEndingAfter(pos);
            Journal.Range r = idx < ranges.size() ? ranges.get(idx) : null;
            if (r != null && r.offset() <= pos) {
                if (r.hole() != data) {
                    return pos; // inside a saved range of the kind we look for
                }
                pos = r.end();
                continue;
            }
            long found = Math.min(data ? image.nextData(pos) : image.nextHole(pos), originalLength);
            if (r != null && r.offset() < found) {
                pos = r.offset(); // the image's answer lies past a saved range: look at that range first
                continue;
            }
            return found;
        }
        return originalLength;
    }

    @Override
    public void punchHole(long offset, long length) throws IOException {
        throw new IOException("the source view of a conversion is read-only");
    }

    @Override
    public long allocatedBytes() throws IOException {
        return image.allocatedBytes();
    }

    @Override
    public boolean isReadOnly() {
        return true;
    }

    @Override
    public String name() {
        return image.name();
    }

    /** The view does not own the image or the journal. */
    @Override
    public void close() {
    }
}
