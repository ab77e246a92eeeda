package io.diskmorph.format.qcow;

import io.diskmorph.testing.DriverConformanceSuite;

import java.util.List;
import java.util.Set;

/**
 * The driver conformance suite for qcow v1: qemu-img's one layout (4 KiB
 * clusters; the sample over a backing file gets qemu's 512-byte clusters),
 * and a compressed sample from qemu-img convert -c.
 */
class QcowConformanceTest extends DriverConformanceSuite {
    @Override
    protected String format() {
        return "qcow";
    }

    @Override
    protected List<Layout> layouts() {
        // 4 KiB clusters: the size ends inside a cluster (qcow sizes are whole sectors)
        return List.of(new Layout("4k", (4L << 20) + 1536, ""));
    }

    @Override
    protected Set<Feature> features() {
        return Set.of(Feature.WRITE, Feature.BACKING_FILES, Feature.COMPRESSED_CLUSTERS);
    }
}
