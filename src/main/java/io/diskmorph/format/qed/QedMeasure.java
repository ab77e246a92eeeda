package io.diskmorph.format.qed;

import io.diskmorph.image.CreateSpec;
import io.diskmorph.image.DiskImage;
import io.diskmorph.image.HostSpace;
import io.diskmorph.image.LayoutTarget;
import io.diskmorph.image.MeasurableFormat;

import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * Size of a new QED image (qemu-img measure has no QED support, so these are
 * diskmorph's own figures, exact for what create and convert write): the
 * header, the L1 table, one L2 table per L1 entry that maps data, and the
 * data clusters. Fully allocated means every L2 table and every cluster.
 * With a backing file every cluster is counted, as qemu does for qcow2.
 */
final class QedMeasure {
    private QedMeasure() {
    }

    static MeasurableFormat.Measurement measure(CreateSpec spec, DiskImage source) throws IOException {
        long size = source != null ? source.virtualSize() : spec.virtualSize();
        CreateSpec sized = new CreateSpec(size, spec.options(), spec.backingFile(), spec.backingFormat());
        // the builder validates the options and settles cluster and table sizes; nothing is written
        QedLayoutBuilder b = QedLayoutBuilder.create(sized, LayoutTarget.TargetDefaults.NONE, NOWHERE);
        long c = b.clusterSize();
        long cov = b.l2Coverage();
        long rounded = Math.addExact(size, 511) & ~511L; // QED rounds the size to sectors
        long fixed = b.headerZone() + b.tableBytes();
        long full = fixed + Math.ceilDiv(rounded, cov) * b.tableBytes() + Math.ceilDiv(rounded, c) * c;
        if (source == null) {
            return new MeasurableFormat.Measurement(fixed, full, -1);
        }
        boolean backing = sized.backingFile() != null || sized.options().containsKey("backing_file");
        if (backing) {
            return new MeasurableFormat.Measurement(full, full, -1);
        }
        long[] bytes = MeasurableFormat.dataBytes(source, cov, c); // one walk for both
        long tables = bytes[0] / cov;
        long data = bytes[1];
        return new MeasurableFormat.Measurement(fixed + tables * b.tableBytes() + data, full, -1);
    }

    /** Host space for a builder that is only asked its geometry. */
    private static final HostSpace NOWHERE = new HostSpace() {
        @Override
        public long allocate(long length, long alignment) {
            throw new IllegalStateException("measure does not lay anything out");
        }

        @Override
        public void write(long hostOffset, ByteBuffer data) {
            throw new IllegalStateException("measure does not write");
        }
    };
}
