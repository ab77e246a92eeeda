package io.diskmorph.format.qcow2;

import io.diskmorph.image.BumpHostSpace;
import io.diskmorph.image.CommitRecord;
import io.diskmorph.image.CreateSpec;
import io.diskmorph.image.DiskImage;
import io.diskmorph.image.HostSpace;
import io.diskmorph.image.ImageFormat;
import io.diskmorph.image.InvalidRequestException;
import io.diskmorph.image.LayoutBuilder;
import io.diskmorph.image.LayoutTarget;
import io.diskmorph.image.MeasurableFormat;
import io.diskmorph.image.OpenContext;
import io.diskmorph.storage.Storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The qcow2 driver (versions 2 and 3, docs/interop/qcow2.rst). Creating an
 * image is building the layout over an empty mapping: {@link #create} runs
 * the same {@link Qcow2LayoutBuilder} an in-place conversion uses.
 */
public final class Qcow2Format implements ImageFormat, LayoutTarget, MeasurableFormat {
    public static final String NAME = "qcow2";

    @Override
    public String name() {
        return NAME;
    }

    /**
     * Magic "QFI\xfb" and version 2 or above, as qemu's qcow2_probe (version 1
     * is the qcow driver's): a future version is then refused by {@link #open}
     * with a clear message instead of being taken for raw data.
     */
    @Override
    public int probe(ByteBuffer head, long fileSize) {
        if (head.remaining() < 8) {
            return 0;
        }
        int at = head.position();
        int version = head.getInt(at + 4);
        return head.getInt(at) == Qcow2Header.MAGIC && Integer.compareUnsigned(version, 2) >= 0 ? 100 : 0;
    }

    @Override
    public DiskImage open(Storage storage, OpenContext context) throws IOException {
        return Qcow2Image.open(this, storage, context);
    }

    /**
     * Builds the layout over an empty mapping (with preallocation=metadata:
     * one data cluster per guest cluster, left sparse) with a bump allocator
     * after cluster 0, then writes the header.
     */
    @Override
    public DiskImage create(Storage storage, CreateSpec spec, OpenContext context) throws IOException {
        Qcow2CreateOptions opts = Qcow2CreateOptions.parse(spec, TargetDefaults.NONE);
        if (spec.virtualSize() < 0) {
            throw new InvalidRequestException("image size must not be negative");
        }
        long size = Math.addExact(spec.virtualSize(), 511) & ~511L; // qemu rounds the size up to sectors
        Map<String, String> options = new HashMap<>(spec.options());
        options.remove("preallocation");
        BumpHostSpace space = new BumpHostSpace(storage, opts.clusterSize());
        LayoutBuilder builder = layoutBuilder(new CreateSpec(size, options, spec.backingFile(),
                spec.backingFormat()), TargetDefaults.NONE, space);
        if (opts.preallocateMetadata()) {
            for (long g = 0; g < size; g += opts.clusterSize()) {
                builder.addData(g, space.allocate(opts.clusterSize(), opts.clusterSize()));
            }
        }
        CommitRecord commit = builder.finish();
        if (storage.size() < builder.requiredFileLength()) {
            storage.truncate(builder.requiredFileLength());
        }
        storage.sync();
        commit.apply(storage);
        return open(storage, context.withReadOnly(false));
    }

    /**
     * Without preallocation (whose data clusters wait as holes) and without
     * subclusters (a cluster partly written keeps holes), every cluster is
     * appended and written whole.
     */
    @Override
    public boolean fillsFileWithoutHoles(Map<String, String> options) {
        try {
            Qcow2CreateOptions o = Qcow2CreateOptions.parse(new CreateSpec(0, options, null, null),
                    TargetDefaults.NONE);
            return !o.preallocateMetadata() && !o.extendedL2();
        } catch (IOException | RuntimeException e) {
            return false; // create reports what is wrong with the options
        }
    }

    @Override
    public String notInPlace(String name) {
        return name.equals("preallocation")
                ? "the guest data already has its clusters; only new tables are written"
                : LayoutTarget.super.notInPlace(name);
    }

    @Override
    public LayoutBuilder layoutBuilder(CreateSpec spec, TargetDefaults defaults, HostSpace space)
            throws IOException {
        Qcow2CreateOptions opts = Qcow2CreateOptions.parse(spec, defaults);
        if (opts.preallocateMetadata()) {
            throw new InvalidRequestException("qcow2 option preallocation: only 'off' when building over existing "
                    + "data");
        }
        return new Qcow2LayoutBuilder(opts, spec.virtualSize(), space);
    }

    @Override
    public Measurement measure(CreateSpec spec, DiskImage source) throws IOException {
        return Qcow2Measure.measure(spec, source);
    }

    /** Clusters with refcount 0 are free space in qcow2, not leaks. */
    @Override
    public boolean unreferencedSpaceIsLeak() {
        return false;
    }

    @Override
    public List<OptionHelp> createOptions() {
        return List.of(
                new OptionHelp("compat", "0.10 (version 2) or 1.1 (version 3, default)"),
                new OptionHelp("cluster_size", "power of two from 512 to 2M (default 64K)"),
                new OptionHelp("refcount_bits", "1, 2, 4, 8, 16 (default), 32 or 64; compat=0.10 only 16"),
                new OptionHelp("lazy_refcounts", "on/off (compat=1.1); diskmorph keeps refcounts exact anyway"),
                new OptionHelp("extended_l2", "on/off: 32 subclusters per cluster (compat=1.1, cluster_size >= 16K)"),
                new OptionHelp("compression_type", "zlib (default) or zstd (compat=1.1)"),
                new OptionHelp("backing_file", "name of the backing file"),
                new OptionHelp("backing_fmt", "format of the backing file"),
                new OptionHelp("preallocation", "off (default) or metadata (all tables and clusters, sparse)"));
    }
}
