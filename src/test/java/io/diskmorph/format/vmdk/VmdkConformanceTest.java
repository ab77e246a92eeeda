package io.diskmorph.format.vmdk;

import io.diskmorph.testing.DriverConformanceSuite;

import java.util.List;
import java.util.Set;

/**
 * The driver conformance suite for VMDK, a driver that reads only: its
 * samples are monolithicSparse files qemu-img and qemu-io make (qemu's
 * 64 KiB grains, with and without zeroed grains, one and two grain
 * tables), guest writes must be refused, and the suite's in-place matrix
 * converts every sample to every in-place target. Not declared: backing
 * files (qemu gives a VMDK only a VMDK parent, the suite's base is raw;
 * VmdkInPlaceTest and VmdkSnapshotTest cover parents) and compressed
 * clusters (streamOptimized, whose grains qemu-io cannot overwrite as the
 * suite's compressed sample does; VmdkInPlaceTest covers it).
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
        return Set.of();
    }
}
