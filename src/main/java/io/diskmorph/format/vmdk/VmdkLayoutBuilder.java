package io.diskmorph.format.vmdk;

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
import java.nio.charset.StandardCharsets;
import java.util.List;

/**
 * Builds a monolithicSparse VMDK over guest data that stays where it is
 * (the target of an in-place conversion): qemu's 64 KiB grains and
 * 512-entry grain tables; the header and the embedded descriptor (sectors
 * 0-20) in a 64 KiB header zone, the header's first sector the commit
 * point; every grain table and its redundant copy, as qemu creates them
 * all, written as the guest offsets pass them into 64 KiB blocks the host
 * space hands out (32 tables a block), then both directories. Memory: one
 * grain table, one block, and the two directories (4 bytes per 32 MiB of
 * disk each).
 */
final class VmdkLayoutBuilder implements LayoutBuilder {
    static final long GRAIN_BYTES = (long) VmdkCreator.GRAIN_SECTORS * 512;
    private static final int TABLE_BYTES = VmdkCreator.GT_ENTRIES * 4;
    private static final int BLOCK_BYTES = 64 << 10;

    private final HostSpace space;
    private final VmdkCreator.Options options;
    private final VmdkCreator.SparseLayout layout;
    private final int[] directory;
    private final int[] redundantDirectory;
    private final int[] table = new int[VmdkCreator.GT_ENTRIES];
    /** The grain table {@link #table} holds; tables before it are written. */
    private long tableIndex;
    private long block = -1;
    private int blockUsed = BLOCK_BYTES;
    private long lastGuest = -1;
    private boolean finished;

    private VmdkLayoutBuilder(HostSpace space, VmdkCreator.Options options) {
        this.space = space;
        this.options = options;
        this.layout = VmdkCreator.SparseLayout.of(options.size());
        this.directory = new int[Math.toIntExact(layout.gtCount())];
        this.redundantDirectory = new int[directory.length];
    }

    /** Validates the options (create's, monolithicSparse only) before anything is allocated. */
    static VmdkLayoutBuilder create(CreateSpec spec, TargetDefaults defaults, HostSpace space) throws IOException {
        if (spec.virtualSize() % 512 != 0) {
            throw new UnsupportedFeatureException("a VMDK disk is whole sectors; this one is " + spec.virtualSize()
                    + " bytes");
        }
        if (spec.backingFile() != null) {
            throw new UnsupportedFeatureException("the image has a backing file (" + spec.backingFile() + ", "
                    + spec.backingFormat() + "), and a VMDK's parent can only be a VMDK named by its CID: convert "
                    + "in place without it (commit or rebase it first) or copy");
        }
        java.util.Map<String, String> given = new java.util.HashMap<>(spec.options());
        String zeroed = defaults.sourceOption("zeroed_grain"); // a VMDK source's zeroed grains stay possible
        if (zeroed != null && !given.containsKey("zeroed_grain")) {
            given.put("zeroed_grain", zeroed);
        }
        VmdkCreator.Options o = VmdkCreator.options(new CreateSpec(spec.virtualSize(), given, null, null));
        if (!o.subformat().equals("monolithicSparse")) {
            throw new InvalidRequestException("in place, VMDK is monolithicSparse (the image is one file), not "
                    + o.subformat());
        }
        if (o.size() / 512 > 0xffffffffL) {
            throw new UnsupportedFeatureException("a monolithicSparse VMDK addresses 2 TiB of file (32-bit sectors); "
                    + "this disk is " + o.size() + " bytes");
        }
        return new VmdkLayoutBuilder(space, o);
    }

    @Override
    public long clusterSize() {
        return GRAIN_BYTES;
    }

    /** The header and descriptor (21 sectors), rounded up to a grain so that grains stay aligned. */
    @Override
    public long headerZone() {
        return GRAIN_BYTES;
    }

    @Override
    public boolean canKeepDataAt(long hostOffset) {
        return hostOffset % GRAIN_BYTES == 0 && hostOffset >= headerZone()
                && hostOffset / 512 + VmdkCreator.GRAIN_SECTORS <= 0xffffffffL;
    }

    @Override
    public void addData(long guestOffset, long hostOffset) throws IOException {
        if (!canKeepDataAt(hostOffset)) {
            throw new IllegalArgumentException("a grain cannot lie at " + hostOffset);
        }
        set(guestOffset, hostOffset / 512);
    }

    /** A zeroed-grain entry when the header has the flag; without a parent an unallocated grain reads zeros too. */
    @Override
    public void addZero(long guestOffset) throws IOException {
        if (options.zeroedGrain()) {
            set(guestOffset, 1);
        } else {
            advance(guestOffset);
        }
    }

    @Override
    public boolean supportsZeroClusters() {
        return options.zeroedGrain();
    }

    private void set(long guestOffset, long entry) throws IOException {
        advance(guestOffset);
        table[(int) (guestOffset / GRAIN_BYTES % VmdkCreator.GT_ENTRIES)] = (int) entry;
    }

    /** Announcements come in guest order: the tables before this one's are complete and written. */
    private void advance(long guestOffset) throws IOException {
        if (finished || guestOffset <= lastGuest || guestOffset % GRAIN_BYTES != 0 || guestOffset >= options.size()) {
            throw new IllegalArgumentException("grain at " + guestOffset + " out of order or out of the disk");
        }
        lastGuest = guestOffset;
        long index = guestOffset / GRAIN_BYTES / VmdkCreator.GT_ENTRIES;
        while (tableIndex < index) {
            writeTable();
        }
    }

    /** Writes grain table {@link #tableIndex} and its redundant copy, and moves on to the next one. */
    private void writeTable() throws IOException {
        ByteBuffer b = ByteBuffer.allocate(TABLE_BYTES).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < table.length; i++) {
            b.putInt(i * 4, table[i]);
        }
        long at = tableSpace();
        space.write(at, b.duplicate());
        directory[(int) tableIndex] = (int) (at / 512);
        long copy = tableSpace();
        space.write(copy, b.duplicate());
        redundantDirectory[(int) tableIndex] = (int) (copy / 512);
        java.util.Arrays.fill(table, 0);
        tableIndex++;
    }

    /** 2 KiB for a table, carved from 64 KiB blocks of host space. */
    private long tableSpace() throws IOException {
        if (blockUsed == BLOCK_BYTES) {
            block = space.allocate(BLOCK_BYTES, 512);
            blockUsed = 0;
        }
        long at = block + blockUsed;
        blockUsed += TABLE_BYTES;
        if (at / 512 > 0xffffffffL) {
            throw new UnsupportedFeatureException("a VMDK grain table would lie past sector 2^32");
        }
        return at;
    }

    @Override
    public CommitRecord finish() throws IOException {
        if (finished) {
            throw new IllegalStateException("finished twice");
        }
        while (tableIndex < directory.length) {
            writeTable();
        }
        finished = true;
        if (blockUsed < BLOCK_BYTES) {
            // the rest of the last block: zeros, so the file holds no stale bytes there
            space.write(block + blockUsed, ByteBuffer.allocate(BLOCK_BYTES - blockUsed));
        }
        long rgd = writeDirectory(redundantDirectory);
        long gd = writeDirectory(directory);
        int version = options.zeroedGrain() ? 2 : 1;
        int flags = SparseHeader.FLAG_REDUNDANT_GD | 1 | (options.zeroedGrain() ? SparseHeader.FLAG_ZEROED_GRAIN : 0);
        ByteBuffer header = VmdkCreator.header(version, flags, layout.capacitySectors(), VmdkCreator.DESCRIPTOR_SECTOR,
                VmdkCreator.DESCRIPTOR_SECTORS, rgd / 512, gd / 512, VmdkCreator.GRAIN_SECTORS, 0);
        byte[] zone = new byte[(VmdkCreator.DESCRIPTOR_SECTOR + VmdkCreator.DESCRIPTOR_SECTORS) * 512];
        header.get(0, zone, 0, 512);
        byte[] text = descriptor().getBytes(StandardCharsets.US_ASCII);
        if (text.length > VmdkCreator.DESCRIPTOR_SECTORS * 512) {
            throw new InvalidRequestException("the descriptor does not fit the 20 sectors kept for it");
        }
        System.arraycopy(text, 0, zone, VmdkCreator.DESCRIPTOR_SECTOR * 512, text.length);
        return CommitRecord.headerSector(zone, space);
    }

    private long writeDirectory(int[] entries) throws IOException {
        long bytes = layout.gdSectors() * 512;
        long at = space.allocate(bytes, 512);
        int chunk = 1 << 16;
        for (long i = 0; i < bytes; i += chunk) {
            int n = (int) Math.min(chunk, bytes - i);
            ByteBuffer b = ByteBuffer.allocate(n).order(ByteOrder.LITTLE_ENDIAN);
            for (int k = 0; k < n / 4 && i / 4 + k < entries.length; k++) {
                b.putInt(k * 4, entries[(int) (i / 4 + k)]);
            }
            space.write(at + i, b);
        }
        return at;
    }

    /**
     * qemu's descriptor for the options; the CID follows from the disk (a
     * builder is deterministic: the converter runs it twice), the extent
     * line names no directory (qemu and VMware read a monolithicSparse file's
     * own grains whatever the line names).
     */
    private String descriptor() {
        long cid = (options.size() * 0x9E3779B97F4A7C15L >>> 32) & 0xfffffffeL;
        return VmdkCreator.descriptor(options, cid, Descriptor.NO_PARENT_CID, List.of("RW "
                + options.size() / 512 + " SPARSE \"disk.vmdk\""));
    }

    @Override
    public long requiredFileLength() {
        return -1;
    }
}
