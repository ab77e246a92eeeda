package io.diskmorph.format.raw;

import io.diskmorph.testing.DriverConformanceSuite;

import java.util.List;
import java.util.Set;

/** The driver conformance suite for raw: no metadata, holes are zeros, a source for in-place conversion. */
class RawConformanceTest extends DriverConformanceSuite {
    @Override
    protected String format() {
        return "raw";
    }

    @Override
    protected List<Layout> layouts() {
        // raw has no clusters; the odd size ends mid-page (sparse-file answers at the last, partial page)
        return List.of(new Layout("4M", 4L << 20, ""), new Layout("5M+1.5k", (5L << 20) + 1536, ""),
                new Layout("fully allocated", (4L << 20) + 512, "preallocation=full")); // no holes: all data
    }

    @Override
    protected Set<Feature> features() {
        return Set.of(Feature.WRITE);
    }
}
