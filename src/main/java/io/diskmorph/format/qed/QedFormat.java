package io.diskmorph.format.qed;

import io.diskmorph.image.BumpHostSpace;
import io.diskmorph.image.CommitRecord;
import io.diskmorph.image.CreateSpec;
import io.diskmorph.image.DiskImage;
import io.diskmorph.image.HostSpace;
import io.diskmorph.image.ImageFormat;
import io.diskmorph.image.LayoutBuilder;
import io.diskmorph.image.LayoutTarget;
import io.diskmorph.image.MeasurableFormat;
import io.diskmorph.image.OpenContext;
import io.diskmorph.storage.Storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.List;

/** QEMU Enhanced Disk (docs/interop/qed_spec.rst), with qemu 7.2's rules as the authority. */
public final class QedFormat implements ImageFormat, LayoutTarget, MeasurableFormat {
    public static final String NAME = "qed";

    @Override
    public String name() {
        return NAME;
    }

    /**
     * qemu's bdrv_qed_probe: the magic. (qemu also wants 64 bytes, but its
     * probe buffer is zero-padded past the end of a short file, so a
     * truncated QED file still probes as QED.)
     */
    @Override
    public int probe(ByteBuffer head, long fileSize) {
        if (head.remaining() < 4) {
            return 0;
        }
        return head.order(ByteOrder.LITTLE_ENDIAN).getInt(head.position()) == QedHeader.MAGIC ? 100 : 0;
    }

    @Override
    public DiskImage open(Storage storage, OpenContext context) throws IOException {
        return QedImage.open(this, storage, context);
    }

    /**
     * An empty image is an empty mapping laid out by the builder: L1 after
     * the header, no L2 tables; tables are synced before the header is written.
     */
    @Override
    public DiskImage create(Storage storage, CreateSpec spec, OpenContext context) throws IOException {
        BumpHostSpace space = new BumpHostSpace(storage, 0);
        LayoutBuilder builder = layoutBuilder(spec, TargetDefaults.NONE, space);
        storage.truncate(0);
        space.startAt(builder.headerZone());
        CommitRecord commit = builder.finish();
        if (storage.size() < builder.requiredFileLength()) {
            storage.truncate(builder.requiredFileLength());
        }
        storage.sync();
        commit.apply(storage);
        return open(storage, context.withReadOnly(false));
    }

    @Override
    public List<OptionHelp> createOptions() {
        return List.of(
                new OptionHelp("backing_file", "File name of a base image"),
                new OptionHelp("backing_fmt", "Image format of the base image (raw is recorded as 'do not probe')"),
                new OptionHelp("cluster_size", "Cluster size in bytes, a power of 2 in [4K, 64M] (default 64K)"),
                new OptionHelp("table_size", "L1/L2 table size in clusters, 2, 4, 8 or 16 (default 4)"));
    }

    @Override
    public LayoutBuilder layoutBuilder(CreateSpec spec, TargetDefaults defaults, HostSpace space) throws IOException {
        return QedLayoutBuilder.create(spec, defaults, space);
    }

    @Override
    public Measurement measure(CreateSpec spec, DiskImage source) throws IOException {
        return QedMeasure.measure(spec, source);
    }

    /** qemu's QED check counts every unreferenced cluster below the end of the file as leaked. */
    @Override
    public String qemuCheckNote(long clusterSize, long fileLength) {
        long leaks = QedChecker.qemuPhantomLeaks(clusterSize, fileLength);
        return leaks == 0 ? null : "qemu-img 7.2 check will report " + leaks + " leaked cluster" + (leaks == 1 ? "" : "s")
                + " that are not: its cluster count divides by the cluster size minus one (qed.h, "
                + "qed_bytes_to_clusters), so every QED file of " + (clusterSize * (clusterSize - 1) >> 20)
                + " MiB or more seems to leak; diskmorph check counts exactly";
    }

    @Override
    public boolean unreferencedSpaceIsLeak() {
        return true;
    }
}
