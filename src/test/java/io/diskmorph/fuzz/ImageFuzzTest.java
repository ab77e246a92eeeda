package io.diskmorph.fuzz;

import com.code_intelligence.jazzer.api.FuzzedDataProvider;
import com.code_intelligence.jazzer.junit.FuzzTest;
import io.diskmorph.convert.ConversionFile;
import io.diskmorph.convert.ConversionPlan;
import io.diskmorph.convert.InPlaceConverter;
import io.diskmorph.image.DiskImage;
import io.diskmorph.image.FormatRegistry;
import io.diskmorph.image.Images;
import io.diskmorph.storage.MemoryStorage;
import org.junit.jupiter.api.Timeout;

import java.lang.management.ClassLoadingMXBean;
import java.lang.management.ManagementFactory;
import java.nio.ByteBuffer;
import java.util.Map;

/**
 * Fuzz targets, one per format and operation family. Without JAZZER_FUZZ
 * each replays its corpus (src/test/resources/io/diskmorph/fuzz/
 * ImageFuzzTestInputs/METHOD/: qemu-img seeds plus every input that once
 * failed, named after what it reproduces) as a regression test; with
 * JAZZER_FUZZ=1 it fuzzes (bench/fuzz.sh runs each for a bounded time).
 * Every input gets a time bound (the JUnit timeout, which Jazzer also uses
 * as libFuzzer's -timeout) and an allocation bound (see {@link Harness}).
 */
class ImageFuzzTest {
    private static final int SECONDS = 20;

    /** Probing and opening with the probed driver, then every read-side operation. */
    @Timeout(value = SECONDS, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
    @FuzzTest
    void probe(byte[] file) {
        bounded(file, () -> {
            MemoryStorage s = Harness.storage(file);
            String[] name = new String[1];
            Harness.attempt("probe", () -> name[0] = FormatRegistry.probe(s).name());
            if (name[0] != null) {
                Harness.openAndExercise(file, null);
            }
        });
    }

    /** QED forced with -f qed: open, info, map, read, check, check -r all. */
    @Timeout(value = SECONDS, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
    @FuzzTest
    void qed(byte[] file) {
        bounded(file, () -> Harness.openAndExercise(file, "qed"));
    }

    /** qcow2 forced with -f qcow2: open, info, map, read (compressed clusters too), check, check -r all. */
    @Timeout(value = SECONDS, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
    @FuzzTest
    void qcow2(byte[] file) {
        bounded(file, () -> Harness.openAndExercise(file, "qcow2"));
    }

    /**
     * Parallels forced with -f parallels: header (both magics, inuse), BAT:
     * open, info, map, read, check, check -r all.
     */
    @Timeout(value = SECONDS, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
    @FuzzTest
    void parallels(byte[] file) {
        bounded(file, () -> Harness.openAndExercise(file, "parallels"));
    }

    /**
     * VDI forced with -f vdi: header, block map (unallocated, discarded and
     * allocated entries), static and dynamic images: open, info, map, read,
     * check, check -r all (refused, as qemu refuses it).
     */
    @Timeout(value = SECONDS, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
    @FuzzTest
    void vdi(byte[] file) {
        bounded(file, () -> Harness.openAndExercise(file, "vdi"));
    }

    /**
     * qcow (version 1) forced with -f qcow: header, L1 and L2 tables, data and
     * compressed clusters, a backing file name: open, info, map, read, check.
     */
    @Timeout(value = SECONDS, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
    @FuzzTest
    void qcow(byte[] file) {
        bounded(file, () -> Harness.openAndExercise(file, "qcow"));
    }

    /** The in-place planner over a qcow source, to qcow2 (the cluster size follows the source's). */
    @Timeout(value = SECONDS, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
    @FuzzTest
    void planQcow(byte[] file) {
        bounded(file, () -> plan(file, "qcow", "qcow2", Map.of()));
    }

    /**
     * VHD forced with -f vpc: the footer (at the end, and a dynamic image's
     * copy at 0), the dynamic header, the BAT, fixed and dynamic images:
     * open, info, map, read, check, check -r all.
     */
    @Timeout(value = SECONDS, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
    @FuzzTest
    void vpc(byte[] file) {
        bounded(file, () -> Harness.openAndExercise(file, "vpc"));
    }

    /**
     * VMDK forced with -f vmdk: a sparse file that is the whole disk (header,
     * embedded descriptor, grain directories and tables, grains; compressed
     * grains and the footer of streamOptimized): open, info, map, read, check.
     */
    @Timeout(value = SECONDS, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
    @FuzzTest
    void vmdk(byte[] file) {
        bounded(file, () -> Harness.openAndExercise(file, "vmdk"));
    }

    /**
     * VMDK guest writes on a sparse file that is the whole disk: writes at
     * the start, middle and end and a zero write read back as written or are
     * refused in one line with the file unchanged (damaged tables are never
     * written through).
     */
    @Timeout(value = SECONDS, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
    @FuzzTest
    void vmdkWrite(byte[] file) {
        bounded(file, () -> Harness.writeAndReadBack(file, "vmdk"));
    }

    /**
     * VHDX forced with -f vhdx, the file described by a {@link SparseInput}
     * (a VHDX is MiBs of zeros around its headers, tables and data): open,
     * info, map, read (differencing images without their parent), check.
     */
    @Timeout(value = SECONDS, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
    @FuzzTest
    void vhdx(byte[] input) {
        byte[] file = SparseInput.expand(input);
        bounded(file, () -> Harness.openAndExercise(file, "vhdx"));
    }

    /**
     * A VHDX (a {@link SparseInput}) opened for writing (its log replayed
     * first, if any) and written: each write lands and reads back, or is
     * refused in one line with the file unchanged.
     */
    @Timeout(value = SECONDS, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
    @FuzzTest
    void vhdxWrite(byte[] input) {
        byte[] file = SparseInput.expand(input);
        bounded(file, () -> Harness.writeAndReadBack(file, "vhdx"));
    }

    /** A VHDX (a {@link SparseInput}) converted in place to qcow2, as convertInPlaceQcow2. */
    @Timeout(value = SECONDS, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
    @FuzzTest
    void convertInPlaceVhdx(byte[] input) {
        byte[] file = SparseInput.expand(input);
        bounded(file, () -> Conversions.convertAndCompare(file, "qcow2", Map.of("cluster_size", "64k")));
    }

    /**
     * A VMDK descriptor file and its extents: the input is a descriptor's
     * length (u32, little endian), the descriptor, then one extent file that
     * every extent name opens (a copy per distinct name, up to eight): flat
     * data, or a sparse, COWD or seSparse extent. Open, info, map, read, check.
     */
    @Timeout(value = SECONDS, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
    @FuzzTest
    void vmdkDescriptor(byte[] input) {
        bounded(input, () -> Harness.openDescriptorAndExercise(input));
    }

    /**
     * Raw: the same read-side operations, and the probing guard. A guest
     * write to a raw image that was probed must never make the file probe as
     * another format (QEMU's rule): it is refused, and the file is unchanged.
     */
    @Timeout(value = SECONDS, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
    @FuzzTest
    void raw(FuzzedDataProvider data) {
        int offset = data.consumeInt(0, FormatRegistry.PROBE_BYTES);
        byte[] write = data.consumeBytes(data.consumeInt(1, 512));
        byte[] file = data.consumeRemainingAsBytes();
        bounded(file, () -> {
            Harness.openAndExercise(file, "raw");
            MemoryStorage s = Harness.storage(file);
            if (!FormatRegistry.probe(s).name().equals("raw") || offset + write.length > file.length) {
                return;
            }
            boolean written = Harness.attempt("guest write to a probed raw image", () -> {
                try (DiskImage img = Images.open(s, null, false)) {
                    img.write(ByteBuffer.wrap(write), offset);
                }
            });
            String now = FormatRegistry.probe(s).name();
            if (!now.equals("raw")) {
                throw new AssertionError("a guest write at " + offset + " turned a probed raw image into " + now);
            }
            if (!written) {
                Harness.assertUnchanged(file, s, "a refused guest write");
            }
        });
    }

    /** The in-place planner (read-only) over a raw source, to QED. */
    @Timeout(value = SECONDS, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
    @FuzzTest
    void planRaw(byte[] file) {
        bounded(file, () -> plan(file, "raw", "qed", Map.of()));
    }

    /** The in-place planner over a qcow2 source, to VDI (1 MiB blocks, laid out densely after the map). */
    @Timeout(value = SECONDS, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
    @FuzzTest
    void planVdi(byte[] file) {
        bounded(file, () -> plan(file, "qcow2", "vdi", Map.of()));
    }

    /** The in-place planner over a qcow2 source, to Parallels (clusters after the BAT's cluster, dense). */
    @Timeout(value = SECONDS, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
    @FuzzTest
    void planParallels(byte[] file) {
        bounded(file, () -> plan(file, "qcow2", "parallels", Map.of()));
    }

    /** The in-place planner over a QED source, to QED with other cluster and table sizes. */
    @Timeout(value = SECONDS, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
    @FuzzTest
    void planQed(byte[] file) {
        bounded(file, () -> plan(file, "qed", "qed", Map.of("cluster_size", "64k", "table_size", "2")));
    }

    /** The in-place planner over a qcow2 source, to qcow2 with another cluster size. */
    @Timeout(value = SECONDS, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
    @FuzzTest
    void planQcow2(byte[] file) {
        bounded(file, () -> plan(file, "qcow2", "qcow2", Map.of("cluster_size", "64k")));
    }

    /**
     * A real in-place conversion of whatever the file probes as, to QED: a
     * refusal leaves the file byte-identical with no journal behind; a
     * success leaves an image that reads the same guest bytes.
     */
    @Timeout(value = SECONDS, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
    @FuzzTest
    void convertInPlace(byte[] file) {
        bounded(file, () -> Conversions.convertAndCompare(file, "qed", Map.of("cluster_size", "64k")));
    }

    /** The same, to qcow2. */
    @Timeout(value = SECONDS, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
    @FuzzTest
    void convertInPlaceQcow2(byte[] file) {
        bounded(file, () -> Conversions.convertAndCompare(file, "qcow2", Map.of("cluster_size", "64k")));
    }

    /**
     * The same, to raw (the roll-forward of issue 17): a success leaves the
     * guest's bytes at their guest offsets in a file of the virtual size.
     */
    @Timeout(value = SECONDS, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
    @FuzzTest
    void convertInPlaceRaw(byte[] file) {
        bounded(file, () -> Conversions.convertAndCompare(file, "raw", Map.of()));
    }

    /** The in-place planner over a VMDK source, to a monolithicSparse VMDK with zeroed grains. */
    @Timeout(value = SECONDS, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
    @FuzzTest
    void planVmdk(byte[] file) {
        bounded(file, () -> plan(file, "vmdk", "vmdk", Map.of("subformat", "monolithicSparse",
                "zeroed_grain", "on")));
    }

    /** A real in-place conversion of whatever the file probes as, to a monolithicSparse VMDK. */
    @Timeout(value = SECONDS, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
    @FuzzTest
    void convertInPlaceVmdk(byte[] file) {
        bounded(file, () -> Conversions.convertAndCompare(file, "vmdk", Map.of()));
    }

    /** A real in-place conversion of whatever the file probes as, to a dynamic VHDX. */
    @Timeout(value = SECONDS, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
    @FuzzTest
    void convertInPlaceToVhdx(byte[] file) {
        bounded(file, () -> Conversions.convertAndCompare(file, "vhdx", Map.of()));
    }

    private static void plan(byte[] file, String source, String target, Map<String, String> options) {
        MemoryStorage s = Harness.storage(file);
        MemoryDir dir = new MemoryDir(Harness.STORAGE_CAP);
        ConversionFile cf = new ConversionFile(s, dir, "fuzz.img", null, null);
        Harness.attempt("in-place plan", () -> {
            ConversionPlan p = InPlaceConverter.plan(cf, new InPlaceConverter.Request(source, target, options, false));
            Conversions.assertSane(p, file.length);
        });
        Harness.assertUnchanged(file, s, "planning");
        if (!dir.files().isEmpty()) {
            throw new AssertionError("planning created " + dir.files().keySet());
        }
    }

    /**
     * Runs one input and checks what it allocated. The first run of a code
     * path also allocates for class loading and Jazzer's instrumentation, so
     * an input that loaded classes is run a second time and that run is
     * measured (the targets are deterministic).
     */
    private static void bounded(byte[] file, Harness.Op target) {
        ClassLoadingMXBean classes = ManagementFactory.getClassLoadingMXBean();
        long loaded = classes.getTotalLoadedClassCount();
        long used = measured(target);
        if (classes.getTotalLoadedClassCount() != loaded) {
            used = measured(target);
        }
        Harness.assertAllocationBounded(used, file.length, "one input");
    }

    private static long measured(Harness.Op target) {
        long start = Harness.allocatedBytes();
        try {
            target.run();
        } catch (java.io.IOException e) {
            throw new AssertionError("the harness itself failed", e);
        }
        return Harness.allocatedBytes() - start;
    }
}
