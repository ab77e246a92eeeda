package io.diskmorph.format.parallels;

import io.diskmorph.image.CommitRecord;
import io.diskmorph.image.CreateSpec;
import io.diskmorph.image.HostSpace;
import io.diskmorph.image.InvalidRequestException;
import io.diskmorph.image.LayoutBuilder;
import io.diskmorph.image.LayoutTarget;
import io.diskmorph.image.UnsupportedFeatureException;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * Builds a Parallels image (the extended magic, as qemu-img creates it)
 * over clusters that stay where they are: the header at 0, the BAT right
 * after it, the data from the BAT's end rounded up to a whole cluster (as
 * qemu-img create puts data_off), so a kept cluster is any cluster-aligned
 * host cluster past it (an entry names host cluster host / cluster size).
 * The BAT is streamed out page by page as the guest offsets advance; its
 * first page stays in memory and goes with the header into the commit
 * record (the header's sector holds the first 112 entries).
 *
 * <p>The cluster size is the option, else the source's when it is a whole
 * number of sectors qemu can open, else qemu's 1 MiB. Parallels has no
 * zero marker and no backing file: zero clusters stay unallocated (they
 * read as zeros), a source with a backing file is refused. The engine lays
 * the target out densely ({@link ParallelsFormat#unreferencedSpaceIsLeak()}):
 * qemu's check counts every byte past the last cluster as a leak, and new
 * clusters go at the end, so the file must end with the last cluster.
 */
final class ParallelsLayoutBuilder implements LayoutBuilder {
    private static final int PAGE_ENTRIES = Bat.PAGE_ENTRIES;

    private final HostSpace space;
    private final long virtualSize;
    private final long cluster;
    private final long entries;
    private final long dataOff;
    private final int[] page = new int[PAGE_ENTRIES];
    private int[] firstPage;
    private long pagesWritten;
    private long lastGuest = -1;
    private long highestEnd;
    private boolean finished;

    private ParallelsLayoutBuilder(HostSpace space, long virtualSize, long cluster) {
        this.space = space;
        this.virtualSize = virtualSize;
        this.cluster = cluster;
        this.entries = Math.ceilDiv(virtualSize, cluster);
        this.dataOff = Math.ceilDiv(ParallelsHeader.BYTES + 4 * entries, cluster) * cluster;
        this.highestEnd = dataOff;
    }

    static ParallelsLayoutBuilder create(CreateSpec spec, LayoutTarget.TargetDefaults defaults, HostSpace space)
            throws IOException {
        java.util.Map<String, String> options = new java.util.HashMap<>(spec.options());
        if (!options.containsKey("cluster_size")) {
            String same = defaults.sourceOption("cluster_size");
            long hint = same != null ? Long.parseLong(same) : defaults.clusterSize();
            boolean usable = hint > 0 && hint % ParallelsHeader.SECTOR == 0
                    && hint <= ParallelsHeader.MAX_TRACKS * ParallelsHeader.SECTOR;
            options.put("cluster_size", Long.toString(usable ? hint : ParallelsFormat.DEFAULT_CLUSTER_SIZE));
        }
        if (spec.backingFile() != null || spec.backingFormat() != null) {
            throw new UnsupportedFeatureException("parallels images have no backing file: an image with a backing "
                    + "file cannot become one in place (copy it: 'diskmorph convert -O parallels SRC DST' reads "
                    + "through the chain)");
        }
        long size = spec.virtualSize();
        if (size % ParallelsHeader.SECTOR != 0) {
            throw new UnsupportedFeatureException("parallels sizes are whole sectors: a disk of " + size
                    + " bytes would change size");
        }
        ParallelsFormat.Geometry g = ParallelsFormat.parse(new CreateSpec(size, options, null, null));
        if (Math.ceilDiv(ParallelsHeader.BYTES + 4 * Math.ceilDiv(size, g.clusterSize()), g.clusterSize())
                * g.clusterSize() / ParallelsHeader.SECTOR > 0xffffffffL) {
            throw new UnsupportedFeatureException("the parallels BAT of a " + size + "-byte disk in clusters of "
                    + g.clusterSize() + " bytes does not fit the header's 32-bit data offset");
        }
        return new ParallelsLayoutBuilder(space, size, g.clusterSize());
    }

    @Override
    public long clusterSize() {
        return cluster;
    }

    /** The header and the BAT, up to the first data cluster. */
    @Override
    public long headerZone() {
        return dataOff;
    }

    @Override
    public boolean canKeepDataAt(long hostOffset) {
        return hostOffset >= dataOff && hostOffset % cluster == 0 && hostOffset / cluster <= 0xffffffffL;
    }

    @Override
    public void addData(long guestOffset, long hostOffset) throws IOException {
        if (!canKeepDataAt(hostOffset)) {
            throw new InvalidRequestException(String.format("parallels cannot keep a cluster at host offset 0x%x "
                    + "(clusters lie at multiples of %d from 0x%x)", hostOffset, cluster, dataOff));
        }
        entry(guestOffset, (int) (hostOffset / cluster));
        highestEnd = Math.max(highestEnd, hostOffset + cluster);
    }

    /** No zero marker: without a backing file (none is taken) an unallocated cluster reads as zeros. */
    @Override
    public void addZero(long guestOffset) throws IOException {
        if (finished || guestOffset < 0 || guestOffset % cluster != 0 || guestOffset >= virtualSize
                || guestOffset <= lastGuest) {
            throw new InvalidRequestException(String.format("guest cluster 0x%x is not a new cluster-aligned offset "
                    + "inside the disk, in increasing order", guestOffset));
        }
        lastGuest = guestOffset;
    }

    @Override
    public boolean supportsZeroClusters() {
        return false;
    }

    private void entry(long guestOffset, int value) throws IOException {
        if (finished) {
            throw new IllegalStateException("parallels layout already finished");
        }
        if (guestOffset < 0 || guestOffset % cluster != 0 || guestOffset >= virtualSize || guestOffset <= lastGuest) {
            throw new InvalidRequestException(String.format("guest cluster 0x%x is not a new cluster-aligned offset "
                    + "inside the disk, in increasing order", guestOffset));
        }
        lastGuest = guestOffset;
        long index = guestOffset / cluster;
        while (pagesWritten < index / PAGE_ENTRIES) {
            writePage();
        }
        page[(int) (index % PAGE_ENTRIES)] = value;
    }

    /** The current page goes out through the host space; the first one is kept for the commit record. */
    private void writePage() throws IOException {
        long first = pagesWritten * PAGE_ENTRIES;
        int n = (int) Math.min(PAGE_ENTRIES, entries - first);
        if (pagesWritten == 0) {
            firstPage = java.util.Arrays.copyOf(page, n);
        } else {
            // a fresh buffer each time: a recording host space may keep it
            ByteBuffer b = ByteBuffer.allocate(n * 4).order(ByteOrder.LITTLE_ENDIAN);
            b.asIntBuffer().put(page, 0, n);
            space.write(ParallelsHeader.BYTES + first * 4, b);
        }
        java.util.Arrays.fill(page, 0);
        pagesWritten++;
    }

    @Override
    public CommitRecord finish() throws IOException {
        if (finished) {
            throw new IllegalStateException("parallels layout already finished");
        }
        while (pagesWritten * PAGE_ENTRIES < Math.max(entries, 1)) {
            writePage();
        }
        finished = true;
        // the first page, then zeros to the next 4 KiB past the BAT (at least a sector past the header's): what
        // qemu-img create leaves there, and never a stale source byte right after the BAT
        long batEnd = ParallelsHeader.BYTES + 4 * entries;
        long zoneEnd = Math.min(dataOff, Math.max(2L * ParallelsHeader.SECTOR, (batEnd + 4095) & -4096L));
        int firstPageEnd = ParallelsHeader.BYTES + 4 * firstPage.length;
        ByteBuffer zone = ByteBuffer.allocate((int) Math.max(firstPageEnd, Math.min(zoneEnd,
                        firstPageEnd + 4096L))).order(ByteOrder.LITTLE_ENDIAN);
        zone.put(ParallelsHeader.qemuFirstSector(virtualSize, cluster).limit(ParallelsHeader.BYTES));
        zone.asIntBuffer().put(firstPage);
        return CommitRecord.headerSector(zone.array(), space);
    }

    /** The end of the last cluster (whole, even where the disk ends inside it), or the data offset. */
    @Override
    public long requiredFileLength() {
        if (!finished) {
            throw new IllegalStateException("parallels layout not finished yet");
        }
        return highestEnd;
    }
}
