package io.diskmorph.format.vdi;

import io.diskmorph.image.CreateSpec;
import io.diskmorph.image.DiskImage;
import io.diskmorph.image.FormatOptions;
import io.diskmorph.image.HostSpace;
import io.diskmorph.image.ImageFormat;
import io.diskmorph.image.InvalidRequestException;
import io.diskmorph.image.LayoutBuilder;
import io.diskmorph.image.LayoutTarget;
import io.diskmorph.image.MeasurableFormat;
import io.diskmorph.image.OpenContext;
import io.diskmorph.image.UnsupportedFeatureException;
import io.diskmorph.storage.Storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.security.SecureRandom;
import java.util.List;

/**
 * VirtualBox's VDI, as qemu 7.2's block/vdi.c reads, writes and creates it:
 * version 1.1 headers, dynamic and static (fixed) images, 1 MiB blocks,
 * no differencing images (link and parent UUIDs must be null). An in-place
 * target ({@link VdiLayoutBuilder}): 1 MiB blocks that sit contiguous and
 * aligned in the file stay, laid out densely after the map.
 */
public final class VdiFormat implements ImageFormat, LayoutTarget, MeasurableFormat {
    public static final String NAME = "vdi";
    /** Map bytes written per request by create. */
    private static final int MAP_CHUNK = 64 * 1024;

    @Override
    public String name() {
        return NAME;
    }

    /** qemu's vdi_probe: the signature at 0x40 (its probe buffer is 512 bytes, zero padded). */
    @Override
    public int probe(ByteBuffer head, long fileSize) {
        if (head.remaining() < VdiHeader.OFF_SIGNATURE + 4) {
            return 0;
        }
        int sig = head.order(ByteOrder.LITTLE_ENDIAN).getInt(head.position() + VdiHeader.OFF_SIGNATURE);
        return sig == VdiHeader.SIGNATURE ? 100 : 0;
    }

    @Override
    public DiskImage open(Storage storage, OpenContext context) throws IOException {
        return VdiImage.open(this, storage, context);
    }

    /**
     * As qemu-img create lays a VDI out: the header, the map at 0x200 (every
     * entry unallocated, or block i at host block i for a static image), the
     * data right after the map rounded to a sector; a static image's file is
     * extended (sparsely) over every block. The header is written last.
     */
    @Override
    public DiskImage create(Storage storage, CreateSpec spec, OpenContext context) throws IOException {
        boolean fixed = parseOptions(spec);
        long size = (spec.virtualSize() + VdiHeader.SECTOR - 1) & -VdiHeader.SECTOR; // qemu-img rounds up to a sector
        long blocks = Math.ceilDiv(size, VdiImage.BLOCK);
        long mapBytes = (blocks * 4 + VdiHeader.SECTOR - 1) & -VdiHeader.SECTOR;
        long mapOffset = VdiHeader.BYTES;
        long dataOffset = mapOffset + mapBytes;
        storage.truncate(0);
        ByteBuffer chunk = ByteBuffer.allocate((int) Math.min(MAP_CHUNK, Math.max(mapBytes, 4)))
                .order(ByteOrder.LITTLE_ENDIAN);
        for (long done = 0; done < mapBytes; ) {
            int n = (int) Math.min(chunk.capacity(), mapBytes - done);
            chunk.clear().limit(n);
            for (int i = 0; i < n; i += 4) {
                long block = (done + i) / 4;
                chunk.putInt(i, block >= blocks ? 0 : fixed ? (int) block : BlockMap.UNALLOCATED);
            }
            storage.write(chunk, mapOffset + done);
            done += n;
        }
        long length = fixed ? dataOffset + blocks * VdiImage.BLOCK : dataOffset;
        storage.truncate(length);
        storage.sync();
        storage.write(VdiHeader.qemuLayout(size, fixed, mapOffset, dataOffset, new SecureRandom()), 0);
        storage.sync();
        return open(storage, context.withReadOnly(false));
    }

    /** Validates the options; true for a static image. */
    private static boolean parseOptions(CreateSpec spec) throws IOException {
        FormatOptions o = new FormatOptions(NAME, spec.options());
        boolean fixed = o.bool("static", false);
        String prealloc = o.string("preallocation", "off");
        o.rejectUnknown();
        if (!prealloc.equals("off")) {
            // qemu passes it to the file, which then holds zeros diskmorph would not write: static=on says it
            throw new UnsupportedFeatureException("VDI preallocation=" + prealloc + " is not supported: use "
                    + "static=on for an image with every block allocated");
        }
        if (spec.backingFile() != null || spec.backingFormat() != null) {
            throw new UnsupportedFeatureException("VDI has no backing files (VirtualBox differencing images are "
                    + "not supported)");
        }
        long size = spec.virtualSize();
        if (size < 0) {
            throw new InvalidRequestException("invalid VDI image size " + size);
        }
        if (size > VdiHeader.MAX_DISK_SIZE) {
            throw new UnsupportedFeatureException(String.format("Unsupported VDI image size (size is 0x%x, max "
                    + "supported is 0x%x)", size, VdiHeader.MAX_DISK_SIZE));
        }
        long mapBytes = (Math.ceilDiv(size, VdiImage.BLOCK) * 4 + VdiHeader.SECTOR - 1) & -VdiHeader.SECTOR;
        if (VdiHeader.BYTES + mapBytes > 0xffffffffL) {
            throw new UnsupportedFeatureException("VDI image size " + size + " needs a block map whose end does not "
                    + "fit the header's 32-bit data offset");
        }
        return fixed;
    }

    /**
     * qemu-img 7.2 cannot measure for VDI ("does not support size
     * measurement"), so these are diskmorph's own figures, by qemu's rule for
     * other formats: the header and the map as qemu-img create lays them out,
     * and one 1 MiB block per block the source maps as data (every block for
     * static=on, and fully allocated). A copy may write less: it skips blocks
     * it finds all zeros.
     */
    @Override
    public Measurement measure(CreateSpec spec, DiskImage source) throws IOException {
        long size = source != null ? source.virtualSize() : spec.virtualSize();
        boolean fixed = parseOptions(new CreateSpec(size, spec.options(), spec.backingFile(), spec.backingFormat()));
        long rounded = (size + VdiHeader.SECTOR - 1) & -VdiHeader.SECTOR;
        long blocks = Math.ceilDiv(rounded, VdiImage.BLOCK);
        long metadata = VdiHeader.BYTES + ((blocks * 4 + VdiHeader.SECTOR - 1) & -VdiHeader.SECTOR);
        long full = metadata + blocks * VdiImage.BLOCK;
        if (fixed) {
            return new Measurement(full, full, -1);
        }
        long data = source == null ? 0 : MeasurableFormat.dataBytes(source, VdiImage.BLOCK);
        return new Measurement(metadata + data, full, -1);
    }

    @Override
    public LayoutBuilder layoutBuilder(CreateSpec spec, TargetDefaults defaults, HostSpace space) throws IOException {
        return VdiLayoutBuilder.create(spec, space);
    }

    /** Host blocks are numbered densely (blocks_allocated): no free MiB may lie between the map and the end. */
    @Override
    public boolean unreferencedSpaceIsLeak() {
        return true;
    }

    @Override
    public String notInPlace(String name) {
        if (name.equals("static") || name.equals("preallocation")) {
            return "a VDI made in place is dynamic: it maps the blocks that hold data, not every block";
        }
        return LayoutTarget.super.notInPlace(name);
    }

    @Override
    public List<OptionHelp> createOptions() {
        return List.of(
                new OptionHelp("preallocation", "Preallocation mode (only off: use static=on)"),
                new OptionHelp("static", "VDI static (pre-allocated) image (on/off, default off)"));
    }
}
