package io.diskmorph.format.qed;

import io.diskmorph.testing.DriverConformanceSuite;

import java.util.List;
import java.util.Set;

/** The driver conformance suite for QED: default geometry, and small clusters with small tables (several L2s). */
class QedConformanceTest extends DriverConformanceSuite {
    @Override
    protected String format() {
        return "qed";
    }

    @Override
    protected List<Layout> layouts() {
        // sizes end inside a cluster (QED sizes are whole sectors); 4k/2 covers 2 MiB per L2 table
        return List.of(new Layout("64k/4", (4L << 20) + 1536, ""),
                new Layout("4k/2", (5L << 20) + 512, "cluster_size=4k,table_size=2"),
                new Layout("1M/2", (4L << 20) + 1536, "cluster_size=1M,table_size=2"));
    }

    @Override
    protected Set<Feature> features() {
        return Set.of(Feature.WRITE, Feature.BACKING_FILES);
    }
}
