package io.diskmorph.format.vhdx;

import io.diskmorph.testing.DriverConformanceSuite;

import java.util.List;
import java.util.Set;

/**
 * The driver conformance suite for VHDX, a driver that reads only: its
 * samples are dynamic and fixed images qemu-img and qemu-io make (1 MiB,
 * 2 MiB and 32 MiB blocks, zero block states on and off, a disk that ends
 * inside a block), guest writes must be refused, and the in-place matrix
 * converts every sample to every in-place target. qemu 7.2 reports no block
 * status for VHDX, so the map is held to what qemu reads. Not declared:
 * backing files (qemu cannot make or open a differencing VHDX;
 * VhdxDifferencingTest builds them) and compressed clusters (VHDX has none).
 */
class VhdxConformanceTest extends DriverConformanceSuite {
    @Override
    protected String format() {
        return "vhdx";
    }

    @Override
    protected List<Layout> layouts() {
        return List.of(new Layout("dynamic 1 MiB blocks, partial last block", (5L << 20) + 512, "block_size=1M"),
                new Layout("dynamic 32 MiB blocks", 40L << 20, "block_size=32M,block_state_zero=off"),
                new Layout("fixed 2 MiB blocks", 6L << 20, "subformat=fixed,block_size=2M,block_state_zero=off"),
                new Layout("fixed, zero blocks", 5L << 20, "subformat=fixed,block_size=1M"));
    }

    @Override
    protected Set<Feature> features() {
        return Set.of();
    }

    @Override
    protected boolean qemuReportsBlockStatus() {
        return false;
    }
}
