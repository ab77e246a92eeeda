package io.diskmorph.format.vpc;

import io.diskmorph.testing.DriverConformanceSuite;

import java.util.List;
import java.util.Set;

/**
 * The driver conformance suite for VHD: dynamic images (2 MiB blocks, a
 * size that is not a CHS size, force_size) and fixed ones as qemu-img and
 * qemu-io make them. Not declared: backing files (qemu cannot make a
 * differencing VHD, and reads one without its parent) and compressed
 * clusters (VHD has none).
 */
class VpcConformanceTest extends DriverConformanceSuite {
    @Override
    protected String format() {
        return "vpc";
    }

    @Override
    protected List<Layout> layouts() {
        // 5000000 is no CHS size (qemu makes the disk 5013504); 2 MiB blocks, the last one partial
        return List.of(new Layout("dynamic", 5_000_000, ""),
                new Layout("dynamic force_size", (5L << 20) + 512, "force_size=on"),
                new Layout("fixed", 6L << 20, "subformat=fixed"),
                new Layout("fixed force_size", (4L << 20) + 1536, "subformat=fixed,force_size=on"));
    }

    /** A fixed VHD has its magic only at the end: qemu-img and diskmorph probe it as raw. */
    @Override
    protected String probedFormat(Layout l) {
        return l.options().contains("subformat=fixed") ? "raw" : "vpc";
    }

    /** qemu-img's CHS rounding (unless force_size), which create follows. */
    @Override
    protected long createdSize(Layout l) {
        return VpcFooter.createGeometry((l.size() + 511) & ~511L, l.options().contains("force_size=on"))[3];
    }

    @Override
    protected Set<Feature> features() {
        return Set.of(Feature.WRITE);
    }
}
