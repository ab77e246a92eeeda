package io.diskmorph.format.raw;

import io.diskmorph.image.AbstractDiskImage;
import io.diskmorph.image.CheckReport;
import io.diskmorph.image.FormatRegistry;
import io.diskmorph.image.ImageException;
import io.diskmorph.image.ImageFormat;
import io.diskmorph.image.ImageInfo;
import io.diskmorph.image.Mapping;
import io.diskmorph.image.OpenContext;
import io.diskmorph.image.RepairMode;
import io.diskmorph.image.UnsupportedFeatureException;
import io.diskmorph.storage.Storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.List;

final class RawImage extends AbstractDiskImage {
    private static final long SECTOR = 512;

    private final RawFormat format;
    private final long size; // guest writes never resize a raw image

    RawImage(RawFormat format, Storage storage, OpenContext context) throws IOException {
        super(storage, context);
        this.format = format;
        if (storage.isReadOnly()) {
            storage.expectSparseQueries(); // a raw image's mapping is the file's holes
        }
        // QEMU's block layer counts whole sectors: a file of 52036 bytes is a 52224-byte disk
        // whose tail past the end of the file reads as zeros
        long length = storage.size();
        this.size = length % SECTOR == 0 ? length : Math.addExact(length - length % SECTOR, SECTOR);
    }

    @Override
    public ImageFormat format() {
        return format;
    }

    @Override
    public long virtualSize() {
        return size;
    }

    @Override
    public long clusterSize() {
        return 0;
    }

    /** Data where the file has data, zeros (at the same offset) where it has holes. */
    @Override
    public Mapping mapping(long guestOffset, long maxLength) throws IOException {
        checkRange(guestOffset, 1); // at the end of the disk no answer of 1..maxLength bytes exists
        long end = Math.min(virtualSize(), guestOffset + maxLength);
        long fileEnd = storage.size();
        if (guestOffset >= fileEnd) {
            return new Mapping.Zero(end - guestOffset, guestOffset); // the sector tail past the end of the file
        }
        long data = storage.nextData(guestOffset);
        if (data > guestOffset) {
            return new Mapping.Zero(Math.min(data, end) - guestOffset, guestOffset);
        }
        long hole = storage.nextHole(guestOffset);
        return new Mapping.Data(Math.min(hole, end) - guestOffset, guestOffset);
    }

    @Override
    public void read(ByteBuffer dst, long guestOffset) throws IOException {
        checkRange(guestOffset, dst.remaining());
        storage.read(dst, guestOffset);
    }

    @Override
    public void write(ByteBuffer src, long guestOffset) throws IOException {
        checkWritable();
        checkRange(guestOffset, src.remaining());
        if (context.probed() && guestOffset < FormatRegistry.PROBE_BYTES) {
            refuseFormatChangingWrite(src, guestOffset);
        }
        storage.write(src, guestOffset);
    }

    /**
     * A raw image opened by probing must not become another format through a
     * guest write (the guest could then make us follow a backing file of its
     * choosing); QEMU refuses the same writes.
     */
    private void refuseFormatChangingWrite(ByteBuffer src, long guestOffset) throws IOException {
        int headLen = (int) Math.min(FormatRegistry.PROBE_BYTES, storage.size());
        ByteBuffer head = storage.readBytes(0, headLen);
        ByteBuffer s = src.duplicate();
        int n = (int) Math.min(s.remaining(), headLen - guestOffset);
        if (n <= 0) {
            return;
        }
        head.put((int) guestOffset, s.limit(s.position() + n), s.position(), n);
        if (!FormatRegistry.probe(head, storage.size()).name().equals(RawFormat.NAME)) {
            throw new ImageException(storage.name() + ": refusing a write to the start of a probed raw image that "
                    + "would make it look like another format; name the format with -f raw");
        }
    }

    @Override
    public void writeZeroes(long guestOffset, long length, boolean mayUnmap) throws IOException {
        checkWritable();
        checkRange(guestOffset, length);
        if (context.probed() && guestOffset < FormatRegistry.PROBE_BYTES) {
            super.writeZeroes(guestOffset, length, mayUnmap);
            return;
        }
        storage.punchHole(guestOffset, length);
    }

    @Override
    public ImageInfo info() throws IOException {
        return new ImageInfo(storage.name(), RawFormat.NAME, virtualSize(), storage.allocatedBytes(), 0, false,
                false, null, null, null, null, List.of());
    }

    @Override
    public CheckReport check(RepairMode repair, io.diskmorph.image.PhaseProgress progress) throws IOException {
        progress.update("check", 0, virtualSize());
        throw new UnsupportedFeatureException("This image format does not support checks");
    }

    @Override
    public void flush() throws IOException {
        if (!isReadOnly()) {
            storage.sync();
        }
    }

    @Override
    protected void closeImage() throws IOException {
        flush();
    }
}
