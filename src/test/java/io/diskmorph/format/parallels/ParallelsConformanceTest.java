package io.diskmorph.format.parallels;

import io.diskmorph.testing.DriverConformanceSuite;

import java.util.List;
import java.util.Set;

/** The driver conformance suite for parallels: images as qemu-img makes them, at three cluster sizes. */
class ParallelsConformanceTest extends DriverConformanceSuite {
    @Override
    protected String format() {
        return "parallels";
    }

    @Override
    protected List<Layout> layouts() {
        return List.of(new Layout("1 MiB clusters", (4L << 20) + 1536, ""),
                new Layout("64 KiB clusters", (6L << 20) + 4096, "cluster_size=64k"),
                new Layout("8 KiB clusters", 4L << 20, "cluster_size=8k"));
    }

    @Override
    protected Set<Feature> features() {
        return Set.of(Feature.WRITE);
    }
}
