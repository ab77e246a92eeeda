package io.diskmorph.format.qcow2;

import io.diskmorph.testing.DriverConformanceSuite;

import java.util.List;
import java.util.Set;

/** The driver conformance suite for qcow2. */
class Qcow2ConformanceTest extends DriverConformanceSuite {
    @Override
    protected String format() {
        return "qcow2";
    }

    /** Sizes end inside a cluster where they can (qcow2 sizes are whole sectors). */
    @Override
    protected List<Layout> layouts() {
        return List.of(new Layout("64k", (4L << 20) + 1536, ""),
                new Layout("v2 4k", (5L << 20) + 512, "compat=0.10,cluster_size=4k"),
                new Layout("extended L2 128k refcount 1", (4L << 20) + 3072, "extended_l2=on,cluster_size=128k,"
                        + "refcount_bits=1"),
                new Layout("512 refcount 64", 4L << 20, "cluster_size=512,refcount_bits=64"),
                new Layout("2M zstd", (6L << 20) + 1536, "cluster_size=2M,compression_type=zstd"),
                // data clusters whose host bytes are holes: map's zero answers, zeros that are not data in place
                new Layout("4k metadata preallocation", (4L << 20) + 512, "preallocation=metadata,cluster_size=4k"),
                new Layout("lazy refcounts", (4L << 20) + 512, "lazy_refcounts=on,refcount_bits=8"));
    }

    @Override
    protected Set<Feature> features() {
        return Set.of(Feature.WRITE, Feature.BACKING_FILES, Feature.COMPRESSED_CLUSTERS);
    }
}
