package io.diskmorph.format.vmdk;

import io.diskmorph.image.AbstractDiskImage;
import io.diskmorph.image.ImageFormat;
import io.diskmorph.image.InvalidRequestException;
import io.diskmorph.image.Mapping;
import io.diskmorph.image.OpenContext;
import io.diskmorph.image.UnsupportedFeatureException;
import io.diskmorph.storage.Storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.zip.Deflater;

/**
 * A new streamOptimized VMDK, written front to back as VMware's stream
 * format lays it out (what ESXi and OVF imports take): a version 3 header
 * whose directory offset says "at the end", the descriptor, then for every
 * grain that holds data a grain marker (guest sector, compressed size) and
 * the grain deflated (zlib, as qemu and VMware write it), padded to a
 * sector; after the grains of each 32 MiB range its grain table behind a
 * table marker; at the end the directory behind its marker, a footer (the
 * header again, with the directory's offset) behind a footer marker, and
 * the end-of-stream marker. Grains that read as zeros are left out (their
 * entries 0) unless a parent would show through; tables without grains
 * too. Memory: one grain, one grain table and the directory (4 bytes per
 * 32 MiB of disk).
 *
 * <p>Writes must come in guest order (copy conversion writes so); a grain
 * is final once a write starts in a later one. {@link #flush} finishes the
 * stream; nothing can be written after it.
 */
final class StreamOptimizedImage extends AbstractDiskImage {
    private static final int SECTOR = 512;
    private static final int GRAIN_BYTES = VmdkCreator.GRAIN_SECTORS * SECTOR;
    private static final int GT_SECTORS = VmdkCreator.GT_ENTRIES * 4 / SECTOR;
    private static final int MARKER_GRAIN_TABLE = 1;
    private static final int MARKER_GRAIN_DIRECTORY = 2;
    private static final int MARKER_FOOTER = 3;
    static final int FLAGS = 1 | SparseHeader.FLAG_COMPRESSED | SparseHeader.FLAG_MARKERS;
    /** Grains start at 64 KiB, after the header and the descriptor's 20 sectors. */
    private static final long FIRST_GRAIN_SECTOR = VmdkCreator.GRAIN_SECTORS;

    private final VmdkFormat format;
    private final long size;
    private final VmdkCreator.SparseLayout layout;
    private final int[] directory;
    private final int[] table = new int[VmdkCreator.GT_ENTRIES];
    private long tableIndex = -1;
    private boolean tableUsed;
    private final byte[] grain = new byte[GRAIN_BYTES];
    /** The grain being filled (-1: none). */
    private long grainIndex = -1;
    private final byte[] compressed = new byte[2 * GRAIN_BYTES + 64];
    private final Deflater deflater = new Deflater();
    private long nextSector = FIRST_GRAIN_SECTOR;
    private boolean finished;

    StreamOptimizedImage(VmdkFormat format, Storage storage, OpenContext context, VmdkCreator.Options options,
                         byte[] descriptor) throws IOException {
        super(storage, context);
        this.format = format;
        this.size = options.size();
        this.layout = VmdkCreator.SparseLayout.of(size);
        if (descriptor.length > VmdkCreator.DESCRIPTOR_SECTORS * SECTOR) {
            throw new InvalidRequestException("the descriptor (" + descriptor.length + " bytes) does not fit the "
                    + VmdkCreator.DESCRIPTOR_SECTORS * SECTOR + " bytes a VMDK keeps for it");
        }
        this.directory = new int[Math.toIntExact(layout.gtCount())];
        this.backingName = options.backingFile();
        this.backingFmt = options.backingFile() == null ? null : VmdkFormat.NAME;
        storage.truncate(0);
        storage.write(header(SparseHeader.GD_AT_END), 0);
        storage.write(ByteBuffer.wrap(descriptor), VmdkCreator.DESCRIPTOR_SECTOR * (long) SECTOR);
    }

    private ByteBuffer header(long gdSector) {
        return VmdkCreator.header(3, FLAGS, layout.capacitySectors(), VmdkCreator.DESCRIPTOR_SECTOR,
                VmdkCreator.DESCRIPTOR_SECTORS, 0, gdSector, FIRST_GRAIN_SECTOR, SparseHeader.COMPRESSION_DEFLATE);
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
        return GRAIN_BYTES;
    }

    /** Written front to back, never read back while it is being written. */
    @Override
    public Mapping mapping(long guestOffset, long maxLength) throws IOException {
        throw new UnsupportedFeatureException(storage.name() + ": a streamOptimized VMDK being written cannot be "
                + "read until it is finished and opened again");
    }

    @Override
    public io.diskmorph.image.ImageInfo info() throws IOException {
        throw new UnsupportedFeatureException(storage.name() + ": a streamOptimized VMDK being written has no info "
                + "until it is finished and opened again");
    }

    @Override
    public void write(ByteBuffer src, long guestOffset) throws IOException {
        put(src, guestOffset, src.remaining());
    }

    @Override
    public void writeZeroes(long guestOffset, long length, boolean mayUnmap) throws IOException {
        put(null, guestOffset, length);
    }

    /** {@code length} bytes of {@code src} (zeros when null) at {@code guestOffset}, in guest order. */
    private void put(ByteBuffer src, long guestOffset, long length) throws IOException {
        checkWritable();
        checkRange(guestOffset, length);
        if (finished) {
            throw new UnsupportedFeatureException(storage.name() + ": the streamOptimized VMDK is finished; "
                    + "nothing more can be written to it");
        }
        long pos = guestOffset;
        long end = guestOffset + length;
        while (pos < end) {
            long index = pos / GRAIN_BYTES;
            int inGrain = (int) (pos % GRAIN_BYTES);
            int n = (int) Math.min(end - pos, GRAIN_BYTES - inGrain);
            if (index < grainIndex || index == grainIndex - 1) {
                throw new UnsupportedFeatureException(storage.name() + ": a streamOptimized VMDK is written front "
                        + "to back (guest offset " + pos + " comes after " + grainIndex * GRAIN_BYTES + ")");
            }
            if (index != grainIndex) {
                if (src == null && inGrain == 0 && n == GRAIN_BYTES && backingName == null) {
                    pos += n; // a whole grain of zeros: left out, it reads zeros
                    continue;
                }
                finishGrain();
                grainIndex = index;
                java.util.Arrays.fill(grain, (byte) 0);
            }
            if (src != null) {
                src.get(grain, inGrain, n);
            } else {
                java.util.Arrays.fill(grain, inGrain, inGrain + n, (byte) 0);
            }
            pos += n;
        }
    }

    /** Compresses the grain being filled behind its marker (or leaves it out when it reads zeros anyway). */
    private void finishGrain() throws IOException {
        if (grainIndex < 0) {
            return;
        }
        long index = grainIndex;
        grainIndex = -1;
        int length = (int) Math.min(GRAIN_BYTES, size - index * GRAIN_BYTES);
        if (backingName == null && isZero(grain, length)) {
            return;
        }
        deflater.reset();
        deflater.setInput(grain, 0, length);
        deflater.finish();
        int packed = 0;
        int room = compressed.length - 12;
        while (!deflater.finished()) {
            int k = deflater.deflate(compressed, 12 + packed, room - packed);
            packed += k;
            if (k == 0 && packed == room) {
                throw new IllegalStateException("a grain deflated past twice its size");
            }
        }
        ByteBuffer b = ByteBuffer.wrap(compressed).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(0, index * VmdkCreator.GRAIN_SECTORS);
        b.putInt(8, packed);
        int total = 12 + packed;
        int padded = Math.ceilDiv(total, SECTOR) * SECTOR;
        java.util.Arrays.fill(compressed, total, padded, (byte) 0);
        long gt = index / VmdkCreator.GT_ENTRIES;
        if (gt != tableIndex) {
            finishTable();
            tableIndex = gt;
        }
        long at = nextSector;
        storage.write(b.limit(padded).position(0), at * SECTOR);
        nextSector += padded / SECTOR;
        table[(int) (index % VmdkCreator.GT_ENTRIES)] = (int) at;
        tableUsed = true;
        checkSectors();
    }

    /** Writes the grain table being filled behind its marker and points the directory at it. */
    private void finishTable() throws IOException {
        if (tableIndex < 0 || !tableUsed) {
            tableIndex = -1;
            return;
        }
        ByteBuffer b = ByteBuffer.allocate(SECTOR + GT_SECTORS * SECTOR).order(ByteOrder.LITTLE_ENDIAN);
        marker(b, GT_SECTORS, MARKER_GRAIN_TABLE);
        for (int i = 0; i < table.length; i++) {
            b.putInt(SECTOR + i * 4, table[i]);
        }
        storage.write(b, nextSector * SECTOR);
        directory[(int) tableIndex] = (int) (nextSector + 1);
        nextSector += 1 + GT_SECTORS;
        java.util.Arrays.fill(table, 0);
        tableUsed = false;
        tableIndex = -1;
        checkSectors();
    }

    private static void marker(ByteBuffer b, long sectors, int type) {
        b.putLong(0, sectors);
        b.putInt(8, 0);
        b.putInt(12, type);
    }

    private void checkSectors() throws UnsupportedFeatureException {
        if (nextSector > 0xffffffffL - 1024) {
            throw new UnsupportedFeatureException(storage.name() + ": the streamOptimized file would grow past "
                    + "2 TiB (sector 2^32), where grain table entries cannot reach");
        }
    }

    private static boolean isZero(byte[] b, int length) {
        for (int i = 0; i < length; i++) {
            if (b[i] != 0) {
                return false;
            }
        }
        return true;
    }

    /** Finishes the stream: the last grain and table, the directory, the footer, the end-of-stream marker; synced. */
    @Override
    public void flush() throws IOException {
        if (finished || isReadOnly()) {
            return;
        }
        finishGrain();
        finishTable();
        int gdSectors = (int) layout.gdSectors();
        ByteBuffer b = ByteBuffer.allocate(SECTOR + gdSectors * SECTOR).order(ByteOrder.LITTLE_ENDIAN);
        marker(b, gdSectors, MARKER_GRAIN_DIRECTORY);
        for (int i = 0; i < directory.length; i++) {
            b.putInt(SECTOR + i * 4, directory[i]);
        }
        storage.write(b, nextSector * SECTOR);
        long gdSector = nextSector + 1;
        nextSector += 1 + gdSectors;
        ByteBuffer tail = ByteBuffer.allocate(3 * SECTOR).order(ByteOrder.LITTLE_ENDIAN);
        marker(tail, 1, MARKER_FOOTER);
        tail.put(SECTOR, header(gdSector), 0, SECTOR);
        // the third sector stays zero: the end-of-stream marker
        storage.write(tail, nextSector * SECTOR);
        nextSector += 3;
        storage.truncate(nextSector * SECTOR);
        storage.sync();
        finished = true;
    }

    @Override
    protected void closeImage() throws IOException {
        try {
            flush();
        } finally {
            deflater.end();
        }
    }
}
