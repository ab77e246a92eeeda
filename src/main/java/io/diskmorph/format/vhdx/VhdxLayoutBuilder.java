package io.diskmorph.format.vhdx;

import io.diskmorph.image.CommitRecord;
import io.diskmorph.image.CreateSpec;
import io.diskmorph.image.HostSpace;
import io.diskmorph.image.InvalidRequestException;
import io.diskmorph.image.LayoutBuilder;
import io.diskmorph.image.LayoutTarget.TargetDefaults;
import io.diskmorph.image.UnsupportedFeatureException;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.HashMap;
import java.util.Map;
import java.util.zip.CRC32C;

/**
 * Builds a dynamic VHDX over guest data that stays where it is (the target
 * of an in-place conversion): payload blocks at any MiB of the file past the
 * 1 MiB header section (the spec's only rule for them), so a raw file keeps
 * every block but the first, which the header section needs. The block size
 * follows the source (its cluster size, at least 1 MiB) unless -o
 * block_size says otherwise. The BAT (whole MiBs, written page by page as
 * the guest offsets pass), then the metadata region and a zeroed log, from
 * the host space; the header section (file identifier, both headers, both
 * region tables) last, its first sector, with the "vhdxfile" signature, the
 * commit point. Memory: one 1 MiB BAT page.
 *
 * <p>A builder runs twice (dry run, real run) and must write the same bytes:
 * its GUIDs (file write, data write, page 83) are derived from what it was
 * told (size, block size, every announced block), not drawn at random. The
 * first write session of any writer (diskmorph, qemu, Hyper-V) replaces the
 * file and data write GUIDs; the page 83 id is the disk's for good.
 */
final class VhdxLayoutBuilder implements LayoutBuilder {
    private static final long MIB = VhdxLayout.MIB;
    private static final int PAGE_ENTRIES = (int) (MIB / 8);

    private final HostSpace space;
    private final VhdxCreator.Options options;
    private final long[] page = new long[PAGE_ENTRIES];
    /** The BAT page {@link #page} holds; pages before it are written. */
    private long pageIndex;
    private long batAt = -1;
    private long lastGuest = -1;
    private long dataEnd;
    private boolean finished;
    /** Everything announced, for the GUIDs. */
    private final CRC32C digest = new CRC32C();
    private long digest2 = 0x9E3779B97F4A7C15L;

    private VhdxLayoutBuilder(HostSpace space, VhdxCreator.Options options) {
        this.space = space;
        this.options = options;
    }

    static VhdxLayoutBuilder create(CreateSpec spec, TargetDefaults defaults, HostSpace space) throws IOException {
        if (spec.virtualSize() % 512 != 0) {
            throw new UnsupportedFeatureException("a VHDX disk is whole 512-byte sectors; this one is "
                    + spec.virtualSize() + " bytes");
        }
        if (spec.backingFile() != null) {
            throw new UnsupportedFeatureException("the image has a backing file (" + spec.backingFile() + "), and "
                    + "diskmorph does not make differencing VHDX images: convert in place without it (commit or "
                    + "rebase it first) or copy");
        }
        Map<String, String> given = new HashMap<>(spec.options());
        if (!given.containsKey("block_size")) {
            long c = Math.max(MIB, Math.min(VhdxLayout.MAX_BLOCK_SIZE, defaults.clusterSize()));
            given.put("block_size", String.valueOf(Long.highestOneBit(c)));
        }
        VhdxCreator.Options o = VhdxCreator.Options.parse(new CreateSpec(spec.virtualSize(), given, null, null));
        if (o.fixed()) {
            throw new InvalidRequestException("in place, a VHDX is dynamic (its blocks stay where the data is), "
                    + "not fixed");
        }
        return new VhdxLayoutBuilder(space, o);
    }

    @Override
    public long clusterSize() {
        return options.blockSize();
    }

    /** The header section: file identifier, headers, region tables. */
    @Override
    public long headerZone() {
        return VhdxLayout.HEADER_SECTION;
    }

    /** Payload blocks lie at whole MiBs ([MS-VHDX] 2.5.1, FileOffsetMB) past the header section. */
    @Override
    public boolean canKeepDataAt(long hostOffset) {
        return hostOffset % MIB == 0 && hostOffset >= VhdxLayout.HEADER_SECTION
                && hostOffset < (1L << 52); // FileOffsetMB is 44 bits of MiBs
    }

    @Override
    public void addData(long guestOffset, long hostOffset) throws IOException {
        if (!canKeepDataAt(hostOffset)) {
            throw new IllegalArgumentException("a VHDX block cannot lie at " + hostOffset);
        }
        set(guestOffset, hostOffset | VhdxImage.FULLY_PRESENT);
        dataEnd = Math.max(dataEnd, hostOffset + options.blockSize());
    }

    /** Zero blocks: the "zero" state (without a parent, a not present block reads zeros too). */
    @Override
    public void addZero(long guestOffset) throws IOException {
        set(guestOffset, VhdxImage.ZERO);
    }

    @Override
    public boolean supportsZeroClusters() {
        return true;
    }

    private void set(long guestOffset, long entry) throws IOException {
        if (finished || guestOffset <= lastGuest || guestOffset % options.blockSize() != 0
                || guestOffset >= options.virtualSize()) {
            throw new IllegalArgumentException("block at " + guestOffset + " out of order or out of the disk");
        }
        lastGuest = guestOffset;
        long block = guestOffset / options.blockSize();
        long index = block + block / options.chunkRatio();
        while (pageIndex < index / PAGE_ENTRIES) {
            writePage();
        }
        page[(int) (index % PAGE_ENTRIES)] = entry;
        digest.update(ByteBuffer.allocate(16).putLong(guestOffset).putLong(entry).flip());
        digest2 = (digest2 ^ entry ^ guestOffset) * 0x100000001B3L;
    }

    /** Writes BAT page {@link #pageIndex} (the BAT's space is taken at the first page) and moves on. */
    private void writePage() throws IOException {
        if (batAt < 0) {
            batAt = space.allocate(options.batLength(), MIB);
        }
        long bytes = Math.min(MIB, options.batLength() - pageIndex * MIB);
        ByteBuffer b = ByteBuffer.allocate((int) bytes).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < bytes / 8; i++) {
            b.putLong(i * 8, page[i]);
        }
        space.write(batAt + pageIndex * MIB, b);
        java.util.Arrays.fill(page, 0);
        pageIndex++;
    }

    @Override
    public CommitRecord finish() throws IOException {
        if (finished) {
            throw new IllegalStateException("finished twice");
        }
        finished = true;
        long pages = options.batLength() / MIB;
        while (pageIndex < pages) {
            writePage();
        }
        digest.update(ByteBuffer.allocate(24).putLong(options.virtualSize()).putLong(options.blockSize())
                .putLong(options.logSize()).flip());
        long seed = (digest.getValue() << 32) ^ digest2;
        long metadataAt = space.allocate(MIB, MIB);
        ByteBuffer metadata = ByteBuffer.allocate((int) MIB);
        metadata.put(VhdxCreator.metadata(options, guid(seed, 1)));
        space.write(metadataAt, metadata.clear());
        long logAt = space.allocate(options.logSize(), MIB);
        ByteBuffer zeros = ByteBuffer.allocate((int) MIB);
        for (long done = 0; done < options.logSize(); done += MIB) {
            space.write(logAt + done, zeros.clear());
        }
        byte[] zone = new byte[(int) VhdxLayout.HEADER_SECTION];
        ByteBuffer z = ByteBuffer.wrap(zone);
        z.put(0, VhdxCreator.fileIdentifier(), 0, VhdxCreator.fileIdentifier().limit());
        Guid fileWrite = guid(seed, 2);
        Guid dataWrite = guid(seed, 3);
        z.put((int) VhdxLayout.HEADER1_OFFSET, VhdxCreator.header(options, logAt, 1, fileWrite, dataWrite), 0,
                VhdxLayout.HEADER_BYTES);
        z.put((int) VhdxLayout.HEADER2_OFFSET, VhdxCreator.header(options, logAt, 2, fileWrite, dataWrite), 0,
                VhdxLayout.HEADER_BYTES);
        ByteBuffer regions = VhdxCreator.regionTable(batAt, options.batLength(), metadataAt);
        z.put((int) VhdxLayout.REGION_TABLE1_OFFSET, regions, 0, VhdxLayout.REGION_TABLE_BYTES);
        z.put((int) VhdxLayout.REGION_TABLE2_OFFSET, regions, 0, VhdxLayout.REGION_TABLE_BYTES);
        return CommitRecord.headerSector(zone, space);
    }

    /** A version 4 style GUID from the builder's inputs (see the class comment). */
    private static Guid guid(long seed, int which) {
        java.util.SplittableRandom r = new java.util.SplittableRandom(seed * 31 + which);
        ByteBuffer b = ByteBuffer.allocate(16).putLong(r.nextLong()).putLong(r.nextLong());
        byte[] g = b.array();
        g[7] = (byte) ((g[7] & 0x0f) | 0x40);
        g[8] = (byte) ((g[8] & 0x3f) | 0x80);
        return new Guid(g);
    }

    /** Every kept block lies wholly inside the file (qemu checks a whole block size past its offset). */
    @Override
    public long requiredFileLength() {
        return dataEnd == 0 ? -1 : dataEnd;
    }
}
