package io.diskmorph.format.vdi;

import io.diskmorph.testing.DriverConformanceSuite;

import java.util.List;
import java.util.Set;

/** The driver conformance suite for VDI: dynamic and static images as qemu-img makes them. */
class VdiConformanceTest extends DriverConformanceSuite {
    @Override
    protected String format() {
        return "vdi";
    }

    @Override
    protected List<Layout> layouts() {
        // 1 MiB blocks: sizes ending inside a block
        return List.of(new Layout("dynamic", (4L << 20) + 1536, ""),
                new Layout("static", (5L << 20) + 512, "static=on"));
    }

    @Override
    protected Set<Feature> features() {
        return Set.of(Feature.WRITE);
    }
}
