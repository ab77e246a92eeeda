package io.diskmorph.format.vpc;

import io.diskmorph.image.CreateSpec;
import io.diskmorph.image.DiskImage;
import io.diskmorph.image.FormatOptions;
import io.diskmorph.image.ImageFormat;
import io.diskmorph.image.InvalidRequestException;
import io.diskmorph.image.OpenContext;
import io.diskmorph.image.TrailerFormat;
import io.diskmorph.image.UnsupportedFeatureException;
import io.diskmorph.storage.Storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.security.SecureRandom;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

/**
 * Microsoft's VHD (Virtual PC, Hyper-V, Azure), named "vpc" as in qemu-img:
 * fixed and dynamic images, read, written and created as qemu 7.2's
 * block/vpc.c does. qemu probes only "conectix" at offset 0, so a dynamic
 * image is recognised and a fixed one (whose only footer is at the end) is
 * raw unless {@code -f vpc} names it.
 */
public final class VpcFormat implements ImageFormat, TrailerFormat, io.diskmorph.image.MeasurableFormat {
    public static final String NAME = "vpc";
    private static final int BAT_CHUNK = 64 * 1024;
    private static final long MIB = 1 << 20;

    @Override
    public String name() {
        return NAME;
    }

    /** qemu's vpc_probe: "conectix" at offset 0 (a dynamic or differencing image's footer copy). */
    @Override
    public int probe(ByteBuffer head, long fileSize) {
        return VpcFooter.hasCookie(head) ? 100 : 0;
    }

    @Override
    public DiskImage open(Storage storage, OpenContext context) throws IOException {
        return VpcImage.open(this, storage, context);
    }

    /** The judged create options. */
    record Options(boolean fixed, boolean forceSize, long requestedSize) {
        long[] geometry() {
            return VpcFooter.createGeometry(requestedSize, forceSize);
        }
    }

    static Options parseOptions(CreateSpec spec) throws IOException {
        return parseOptions(spec, "dynamic");
    }

    /**
     * The options, with diskmorph's azure=on|grow (Azure takes a fixed VHD
     * whose disk is a whole number of MiB, sized by current_size): it makes
     * the image fixed and force_size, and refuses another size (on) or
     * grows the disk to the next MiB (grow); never rounds silently.
     */
    static Options parseOptions(CreateSpec spec, String defaultSubformat) throws IOException {
        FormatOptions o = new FormatOptions(NAME, spec.options());
        String azure = o.string("azure", "off");
        String sub = o.string("subformat", azure.equals("off") ? defaultSubformat : "fixed");
        boolean force = o.bool("force_size", !azure.equals("off"));
        o.rejectUnknown();
        if (!azure.equals("off") && !azure.equals("on") && !azure.equals("grow")) {
            throw new InvalidRequestException("Parameter 'azure' does not accept value '" + azure + "' (off, on, "
                    + "grow)");
        }
        if (!azure.equals("off") && (!sub.equals("fixed") || !force)) {
            throw new InvalidRequestException("azure=" + azure + " makes a fixed VHD sized by force_size: it takes "
                    + "neither subformat=" + sub + " nor force_size=off");
        }
        if (!sub.equals("dynamic") && !sub.equals("fixed")) {
            throw new InvalidRequestException("Parameter 'subformat' does not accept value '" + sub + "' (VHD "
                    + "subformats: dynamic, fixed)");
        }
        if (spec.backingFile() != null || spec.backingFormat() != null) {
            throw new UnsupportedFeatureException("VHD (vpc) images made here have no backing file (qemu-img: "
                    + "Invalid parameter 'backing_file')");
        }
        long size = spec.virtualSize();
        if (size < 0) {
            throw new InvalidRequestException("invalid VHD image size " + size);
        }
        size = (size + 511) & ~511L; // qemu-img rounds the size up to a sector
        if (!azure.equals("off") && size % MIB != 0) {
            long needed = Math.ceilDiv(size, MIB) * MIB;
            if (azure.equals("on")) {
                throw new UnsupportedFeatureException("Azure takes a disk of a whole number of MiB: " + size
                        + " bytes is not; it needs " + needed + " (-o azure=grow makes the disk that size)");
            }
            size = needed;
        }
        if (size / 512 > VpcFooter.MAX_SECTORS) {
            throw new UnsupportedFeatureException("The image size is too large for file format 'vpc' (at most "
                    + "2040 GiB)");
        }
        return new Options(sub.equals("fixed"), force, size);
    }

    @Override
    public void checkCreateSpec(CreateSpec spec) throws IOException {
        parseOptions(spec);
    }

    /**
     * qemu-img 7.2 has no measure for vpc; diskmorph's: the size a copy to a
     * VHD makes (the layout create and the writes give it). Fixed: the disk
     * (its CHS size unless force_size) and the footer. Dynamic: footer copy,
     * header, BAT (padded to a sector) and footer, plus 512 bytes of bitmap
     * and the 2 MiB block for every block that holds data (all of them when
     * fully allocated).
     */
    @Override
    public Measurement measure(CreateSpec spec, DiskImage source) throws IOException {
        long size = source != null ? source.virtualSize() : spec.virtualSize();
        Options o = parseOptions(new CreateSpec(size, spec.options(), spec.backingFile(), spec.backingFormat()));
        long disk = o.geometry()[3];
        if (o.fixed()) {
            return new Measurement(disk + VpcFooter.BYTES, disk + VpcFooter.BYTES, -1);
        }
        long blockSize = VpcDynamicHeader.QEMU_BLOCK_SIZE;
        long entries = Math.ceilDiv(disk / 512, blockSize / 512);
        long metadata = 3 * 512 + ((entries * 4 + 511) & ~511L) + VpcFooter.BYTES;
        long perBlock = 512 + blockSize;
        long blocks = source == null ? 0
                : io.diskmorph.image.MeasurableFormat.dataBytes(source, blockSize) / blockSize;
        return new Measurement(metadata + blocks * perBlock, metadata + entries * perBlock, -1);
    }

    /**
     * As qemu-img 7.2 create lays a VHD out. Fixed: the disk, then the
     * footer. Dynamic: footer copy at 0, dynamic header at 512, the BAT at
     * 1536 (every entry unallocated, padded to a sector), the footer; 2 MiB
     * blocks. The footer copy at 0, the magic qemu probes, is written last.
     */
    @Override
    public DiskImage create(Storage storage, CreateSpec spec, OpenContext context) throws IOException {
        Options o = parseOptions(spec);
        long[] g = o.geometry();
        long disk = g[3];
        byte[] uuid = new byte[16];
        new SecureRandom().nextBytes(uuid);
        uuid[6] = (byte) ((uuid[6] & 0x0f) | 0x40); // a version 4 UUID, as qemu_uuid_generate makes
        uuid[8] = (byte) ((uuid[8] & 0x3f) | 0x80);
        int type = o.fixed() ? VpcFooter.TYPE_FIXED : VpcFooter.TYPE_DYNAMIC;
        VpcFooter footer = VpcFooter.create(disk, new int[]{(int) g[0], (int) g[1], (int) g[2]}, o.forceSize(),
                type, System.currentTimeMillis() / 1000, uuid);
        storage.truncate(0);
        if (o.fixed()) {
            storage.truncate(disk);
            storage.write(footer.buffer(), disk);
            storage.sync();
            return open(storage, context.withReadOnly(false));
        }
        long blockSize = VpcDynamicHeader.QEMU_BLOCK_SIZE;
        long entries = Math.ceilDiv(disk / 512, blockSize / 512);
        long batOffset = 3 * 512;
        long batBytes = (entries * 4 + 511) & ~511L;
        ByteBuffer chunk = ByteBuffer.allocate((int) Math.min(BAT_CHUNK, Math.max(batBytes, 512)));
        Arrays.fill(chunk.array(), (byte) 0xff);
        for (long done = 0; done < batBytes; ) {
            int n = (int) Math.min(chunk.capacity(), batBytes - done);
            storage.write(chunk.clear().limit(n), batOffset + done);
            done += n;
        }
        storage.write(ByteBuffer.wrap(VpcDynamicHeader.create(batOffset, entries, blockSize)), VpcFooter.BYTES);
        storage.write(footer.buffer(), batOffset + batBytes);
        storage.sync();
        storage.write(footer.buffer(), 0);
        storage.sync();
        return open(storage, context.withReadOnly(false));
    }

    /**
     * In place from raw: a fixed VHD is the raw disk and a footer, so the
     * footer is all that is written. Without force_size the size must be a
     * CHS size already (qemu's geometry would change it): refused with the
     * size qemu would make and the option that keeps the size.
     */
    @Override
    public Trailer trailer(long rawLength, Map<String, String> options) throws IOException {
        Options o;
        try {
            o = parseOptions(new CreateSpec(rawLength, options, null, null), "fixed");
        } catch (UnsupportedFeatureException e) {
            throw new UnsupportedFeatureException("in-place conversion to vpc: " + e.getMessage());
        }
        if (!o.fixed()) {
            throw new UnsupportedFeatureException("in place, a VHD is made fixed (the raw disk and a footer): a "
                    + "dynamic VHD has a sector bitmap in front of every block, so every block would move (use a "
                    + "copy conversion for subformat=dynamic)");
        }
        if (rawLength % 512 != 0 && !"grow".equals(options.get("azure"))) {
            throw new UnsupportedFeatureException("the raw file is " + rawLength + " bytes, not a whole number of "
                    + "sectors, which a VHD disk is (extend it: 'truncate -s " + o.requestedSize() + "')");
        }
        long[] g = o.geometry();
        long disk = g[3];
        if (disk != o.requestedSize()) {
            throw new UnsupportedFeatureException("a VHD of " + rawLength + " bytes without force_size takes its "
                    + "size from a CHS geometry, which makes it " + disk + " bytes (qemu-img's rounding); -o "
                    + "force_size=on keeps " + rawLength + " exactly");
        }
        byte[] uuid = new byte[16];
        new SecureRandom().nextBytes(uuid);
        uuid[6] = (byte) ((uuid[6] & 0x0f) | 0x40);
        uuid[8] = (byte) ((uuid[8] & 0x3f) | 0x80);
        VpcFooter footer = VpcFooter.create(disk, new int[]{(int) g[0], (int) g[1], (int) g[2]}, o.forceSize(),
                VpcFooter.TYPE_FIXED, System.currentTimeMillis() / 1000, uuid);
        List<String> notes = List.of("a fixed VHD probes as raw (its magic is at the end): name it with -f vpc; "
                + (o.forceSize() ? "its size is current_size (creator 'qem2', the largest geometry)"
                : String.format("its geometry is %d/%d/%d", g[0], g[1], g[2])));
        return new Trailer(disk, footer.bytes(), notes);
    }

    @Override
    public List<OptionHelp> createOptions() {
        return List.of(
                new OptionHelp("azure", "diskmorph: a fixed VHD as Azure takes it (force_size, a whole number of "
                        + "MiB): on refuses another size, grow extends the disk to the next MiB (off/on/grow)"),
                new OptionHelp("force_size", "Force disk size calculation to use the actual size specified, "
                        + "rather than using the nearest CHS-based calculation (on/off, default off)"),
                new OptionHelp("subformat", "Type of virtual hard disk format: dynamic (default) or fixed"));
    }
}
