package io.diskmorph.format.vmdk;

import io.diskmorph.testing.DriverConformanceSuite;

import java.util.List;
import java.util.Set;

/**
 * The driver conformance suite for VMDK: its samples are monolithicSparse
 * files qemu-img and qemu-io make (qemu's 64 KiB grains, with and without
 * zeroed grains, one and two grain tables); guest writes and create are
 * declared, so the suite's random writes run over images diskmorph creates
 * and over every sample; the in-place matrix converts every sample to every
 * in-place target. Not declared: backing files (qemu gives a VMDK only a
 * VMDK parent, the suite's base is raw; VmdkInPlaceTest, VmdkSnapshotTest
 * and VmdkCreateTest cover parents) and compressed clusters
 * (streamOptimized is written whole by convert, not cluster by cluster;
 * VmdkCreateTest covers it).
 */
class VmdkConformanceTest extends DriverConformanceSuite {
    @Override
    protected String format() {
        return "vmdk";
    }

    @Override
    protected List<Layout> layouts() {
        // the first size ends inside a grain (VMDK sizes are whole sectors); 32 MiB per grain table
        return List.of(new Layout("monolithicSparse", (4L << 20) + 1536, ""),
                new Layout("zeroed grains", (5L << 20) + 512, "zeroed_grain=on"),
                new Layout("two grain tables", 40L << 20, ""));
    }

    @Override
    protected Set<Feature> features() {
        return Set.of(Feature.WRITE);
    }
}
