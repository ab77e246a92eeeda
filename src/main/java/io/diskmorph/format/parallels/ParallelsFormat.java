package io.diskmorph.format.parallels;

import io.diskmorph.image.CreateSpec;
import io.diskmorph.image.DiskImage;
import io.diskmorph.image.FormatOptions;
import io.diskmorph.image.HostSpace;
import io.diskmorph.image.ImageFormat;
import io.diskmorph.image.InvalidRequestException;
import io.diskmorph.image.LayoutBuilder;
import io.diskmorph.image.LayoutTarget;
import io.diskmorph.image.OpenContext;
import io.diskmorph.image.UnsupportedFeatureException;
import io.diskmorph.storage.Storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.List;

/**
 * Parallels (and OpenVZ ploop) images, as qemu 7.2's block/parallels.c
 * reads, writes, creates and checks them: the header, one BAT, data
 * clusters. qemu-img 7.2 has no measure for parallels, and neither has
 * diskmorph. An in-place target ({@link ParallelsLayoutBuilder}): clusters
 * that sit cluster-aligned past the BAT stay, laid out densely.
 */
public final class ParallelsFormat implements ImageFormat, LayoutTarget {
    public static final String NAME = "parallels";
    /** qemu's DEFAULT_CLUSTER_SIZE. */
    static final long DEFAULT_CLUSTER_SIZE = 1 << 20;
    /** qemu-img create's bound: the disk may have at most 2^32 clusters. */
    private static final long MAX_CLUSTERS = 1L << 32;

    @Override
    public String name() {
        return NAME;
    }

    @Override
    public int probe(ByteBuffer head, long fileSize) {
        return ParallelsHeader.probe(head) ? 100 : 0;
    }

    @Override
    public DiskImage open(Storage storage, OpenContext context) throws IOException {
        return ParallelsImage.open(this, storage, context);
    }

    /** The sizes create writes: the disk rounded up to a sector, the cluster size. */
    record Geometry(long totalSize, long clusterSize) {
    }

    /**
     * Validates the options as qemu-img create does: cluster_size (1 MiB by
     * default) rounded up to a sector, the disk rounded up to a sector and
     * below 2^32 clusters. Cluster sizes qemu creates but cannot open
     * (above 4186127 sectors: "Too big cluster") are refused here.
     */
    static Geometry parse(CreateSpec spec) throws IOException {
        FormatOptions o = new FormatOptions(NAME, spec.options());
        long requested = o.size("cluster_size", DEFAULT_CLUSTER_SIZE);
        String prealloc = o.string("preallocation", "off");
        o.rejectUnknown();
        if (!prealloc.equals("off")) {
            // qemu passes it to the file protocol: the file would hold zeros past the BAT that no entry names
            throw new UnsupportedFeatureException("parallels preallocation=" + prealloc + " is not supported (only "
                    + "off)");
        }
        if (spec.backingFile() != null || spec.backingFormat() != null) {
            throw new UnsupportedFeatureException("parallels images have no backing file in their header (qemu-img "
                    + "creates none either)");
        }
        long size = spec.virtualSize();
        if (size < 0) {
            throw new InvalidRequestException("invalid parallels image size " + size);
        }
        long sector = ParallelsHeader.SECTOR;
        long clusterSize = Math.ceilDiv(requested, sector) * sector;
        if (clusterSize > ParallelsHeader.MAX_TRACKS * sector) {
            throw new InvalidRequestException("Cluster size is too large (" + clusterSize + " bytes; qemu opens "
                    + "clusters of up to " + ParallelsHeader.MAX_TRACKS * sector + ")");
        }
        long total = Math.ceilDiv(size, sector) * sector;
        if (clusterSize == 0 || total / MAX_CLUSTERS >= clusterSize) {
            throw new InvalidRequestException("Image size is too large for this cluster size");
        }
        return new Geometry(total, clusterSize);
    }

    @Override
    public void checkCreateSpec(CreateSpec spec) throws IOException {
        parse(spec);
    }

    /**
     * As qemu-img 7.2 creates one, byte for byte: the header in the first
     * sector, the BAT zeroed up to the data offset (the BAT rounded up to a
     * whole cluster), which is the file's end. The file is extended
     * (sparsely) before the header is written.
     */
    @Override
    public DiskImage create(Storage storage, CreateSpec spec, OpenContext context) throws IOException {
        Geometry g = parse(spec);
        ByteBuffer first = ParallelsHeader.qemuFirstSector(g.totalSize(), g.clusterSize());
        long length = Integer.toUnsignedLong(first.duplicate().order(java.nio.ByteOrder.LITTLE_ENDIAN)
                .getInt(ParallelsHeader.OFF_DATA_OFF)) * ParallelsHeader.SECTOR;
        storage.truncate(0);
        storage.truncate(length);
        storage.sync();
        storage.write(first, 0);
        storage.sync();
        return open(storage, context.withReadOnly(false));
    }

    @Override
    public LayoutBuilder layoutBuilder(CreateSpec spec, TargetDefaults defaults, HostSpace space) throws IOException {
        return ParallelsLayoutBuilder.create(spec, defaults, space);
    }

    /** qemu's check counts every byte past the last cluster as a leak, and new clusters go at the end. */
    @Override
    public boolean unreferencedSpaceIsLeak() {
        return true;
    }

    @Override
    public String notInPlace(String name) {
        if (name.equals("preallocation")) {
            return "a parallels image made in place maps the clusters that hold data";
        }
        return LayoutTarget.super.notInPlace(name);
    }

    @Override
    public List<OptionHelp> createOptions() {
        return List.of(
                new OptionHelp("cluster_size", "Parallels image cluster size"),
                new OptionHelp("preallocation", "Preallocation mode (only off)"));
    }
}
