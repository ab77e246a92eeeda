package io.diskmorph.format.qcow2;

import io.diskmorph.image.CreateSpec;
import io.diskmorph.image.DiskImage;
import io.diskmorph.image.InvalidRequestException;
import io.diskmorph.image.LayoutTarget;
import io.diskmorph.image.MeasurableFormat;

import java.io.IOException;
import java.nio.charset.StandardCharsets;

/**
 * qemu-img measure for qcow2 targets, with qemu's formulas (block/qcow2.c
 * qcow2_measure): the fully allocated size is the data plus the metadata of
 * a preallocated image (header, every L2 table, the L1 table, and refcount
 * structures that count everything, themselves included); the required size
 * keeps that metadata and counts only the target clusters holding data.
 */
final class Qcow2Measure {
    private static final int BITMAP_DIR_ENTRY_HEADER = 24;

    private Qcow2Measure() {
    }

    static MeasurableFormat.Measurement measure(CreateSpec spec, DiskImage source) throws IOException {
        Qcow2CreateOptions o = Qcow2CreateOptions.parse(spec, LayoutTarget.TargetDefaults.NONE);
        long cs = o.clusterSize();
        long size = source != null ? source.virtualSize() : spec.virtualSize();
        if (size < 0) {
            throw new InvalidRequestException("image size must not be negative");
        }
        long virtual = roundUp(size, cs);
        long l2EntrySize = o.extendedL2() ? 16 : 8;
        long l2Tables = ceilDiv(virtual / cs, cs / l2EntrySize);
        if (l2Tables > Qcow2Header.MAX_L1_BYTES / 8) {
            throw new InvalidRequestException("image size " + size + " is too large for qcow2 with cluster_size "
                    + cs + " (try a larger cluster size)");
        }
        long data = 0;
        if (source != null) {
            // with a backing file nothing is known to be shared: count every cluster, like qemu
            data = o.backingFile() != null ? virtual : MeasurableFormat.dataBytes(source, cs);
        }
        long full = preallocatedSize(virtual, cs, o.refcountOrder(), l2EntrySize);
        long bitmaps = -1;
        if (o.version() >= 3 && source instanceof Qcow2Image q && q.header.version >= 3) {
            bitmaps = bitmapsSize(q, cs);
        }
        return new MeasurableFormat.Measurement(full - virtual + data, full, bitmaps);
    }

    /** qemu's qcow2_calc_prealloc_size: header, L2 tables, L1 table, refcounts, data. */
    static long preallocatedSize(long virtual, long cs, int refcountOrder, long l2EntrySize) {
        long meta = cs;
        long l2Entries = roundUp(virtual / cs, cs / l2EntrySize);
        meta += l2Entries * l2EntrySize;
        long l1Entries = roundUp(l2Entries * l2EntrySize / cs, cs / 8);
        meta += l1Entries * 8;
        meta += refcountMetadataSize((meta + virtual) / cs, cs, refcountOrder);
        return meta + virtual;
    }

    /**
     * Bytes of refcount table and blocks needed to count {@code clusters}
     * clusters and themselves: the fixed point of blocks = ceil((clusters +
     * table + blocks) / per block), table = ceil(blocks / per table cluster).
     */
    static long refcountMetadataSize(long clusters, long cs, int refcountOrder) {
        long perTableCluster = cs / 8;
        long perBlock = cs * 8 >>> refcountOrder;
        long table = 0;
        long blocks = 0;
        long n = 0;
        long last;
        do {
            last = n;
            blocks = ceilDiv(clusters + table + blocks, perBlock);
            table = ceilDiv(blocks, perTableCluster);
            n = clusters + blocks + table;
        } while (n != last);
        return (blocks + table) * cs;
    }

    /**
     * qemu's qcow2_get_persistent_dirty_bitmap_size: per bitmap its data
     * clusters (as if fully set) and its table, plus the directory, all in
     * target clusters.
     */
    private static long bitmapsSize(Qcow2Image source, long cs) throws IOException {
        BitmapDirectory.Extension ext = BitmapDirectory.extension(source.header);
        if (ext == null) {
            return 0;
        }
        long total = 0;
        long dir = 0;
        for (BitmapDirectory.Bitmap b : BitmapDirectory.read(source.storage(), ext)) {
            long bits = ceilDiv(source.virtualSize(), 1L << b.granularityBits());
            long clusters = ceilDiv(ceilDiv(bits, 8), cs);
            total += clusters * cs + roundUp(clusters * 8, cs);
            dir += roundUp(BITMAP_DIR_ENTRY_HEADER + b.name().getBytes(StandardCharsets.UTF_8).length, 8);
        }
        return total + roundUp(dir, cs);
    }

    private static long ceilDiv(long a, long b) {
        return Math.ceilDiv(a, b);
    }

    private static long roundUp(long v, long unit) {
        return Math.multiplyExact(Math.ceilDiv(v, unit), unit);
    }
}
