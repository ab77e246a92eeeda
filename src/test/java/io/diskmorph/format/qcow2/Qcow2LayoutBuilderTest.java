package io.diskmorph.format.qcow2;

import io.diskmorph.image.BumpHostSpace;
import io.diskmorph.image.CreateSpec;
import io.diskmorph.image.HostSpace;
import io.diskmorph.image.ImageException;
import io.diskmorph.image.InvalidRequestException;
import io.diskmorph.image.LayoutBuilder;
import io.diskmorph.image.LayoutTarget;
import io.diskmorph.image.UnsupportedFeatureException;
import io.diskmorph.storage.FileStorage;
import io.diskmorph.storage.LockMode;
import io.diskmorph.storage.MemoryStorage;
import io.diskmorph.storage.Storage;
import io.diskmorph.testing.KeptDataSpace;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The layout builder over synthetic mappings: data clusters scattered at
 * chosen host offsets (also far past, and below, the builder's own
 * allocations), zero clusters and gaps; the result must pass qemu-img check
 * and map every data cluster where it was announced.
 */
class Qcow2LayoutBuilderTest {
    @TempDir
    Path dir;

    /** A synthetic source: guest cluster index -> host cluster index, plus zero clusters. */
    record Source(long clusterSize, long virtualSize, TreeMap<Long, Long> data, Set<Long> zeros) {
        Set<Long> hostOffsets() {
            Set<Long> s = new HashSet<>();
            data.values().forEach(h -> s.add(h * clusterSize));
            return s;
        }
    }

    private static byte pattern(long guestCluster) {
        return (byte) (0x30 + guestCluster % 200);
    }

    /** Writes the data clusters into {@code storage}, builds the layout, writes the header zone last. */
    private static LayoutBuilder build(Storage storage, Source src, Map<String, String> options, HostSpace space)
            throws IOException {
        long c = src.clusterSize();
        for (Map.Entry<Long, Long> e : src.data().entrySet()) {
            byte[] b = new byte[(int) c];
            Arrays.fill(b, pattern(e.getKey()));
            storage.write(ByteBuffer.wrap(b), e.getValue() * c);
        }
        LayoutBuilder builder = new Qcow2Format().layoutBuilder(new CreateSpec(src.virtualSize(), options, null,
                null), LayoutTarget.TargetDefaults.NONE, space);
        long guestClusters = (src.virtualSize() + c - 1) / c;
        for (long g = 0; g < guestClusters; g++) {
            if (src.data().containsKey(g)) {
                builder.addData(g * c, src.data().get(g) * c);
            } else if (src.zeros().contains(g)) {
                builder.addZero(g * c);
            }
        }
        io.diskmorph.image.CommitRecord commit = builder.finish();
        for (var w : commit.writes()) {
            assertTrue(w.end() <= builder.headerZone(), "the switch writes inside the header zone");
        }
        if (storage.size() < builder.requiredFileLength()) {
            storage.truncate(builder.requiredFileLength());
        }
        commit.apply(storage);
        return builder;
    }

    private static Source scattered(long c, long virtualClusters, boolean zeros) {
        TreeMap<Long, Long> data = new TreeMap<>();
        // guest order differs from host order; some hosts lie far past anything the builder allocates
        data.put(0L, 7L);
        data.put(1L, 3L);
        data.put(2L, 4L);
        data.put(5L, 1L);
        data.put(9L, 900L);
        data.put(virtualClusters / 2, 2L);
        data.put(virtualClusters / 2 + 1, 5000L);
        data.put(virtualClusters - 1, 6L);
        Set<Long> z = new HashSet<>();
        if (zeros) {
            z.add(3L);
            z.add(virtualClusters / 2 + 2);
            z.add(virtualClusters - 2);
        }
        return new Source(c, virtualClusters * c - (c > 512 ? 512 : 0), data, z); // last cluster partial
    }

    private void assertQemuAgrees(Path file, Source src) throws IOException {
        Oracle.assertCheckClean(file);
        long c = src.clusterSize();
        // every data cluster is mapped at its announced host offset
        Map<Long, Long> mapped = new HashMap<>();
        Set<Long> zeroClusters = new HashSet<>();
        for (Qemu.MapLine l : Qemu.map(file, "qcow2")) {
            for (long g = l.start(); g < l.start() + l.length(); g += c) {
                if (l.data()) {
                    mapped.put(g / c, (l.offset() + (g - l.start())) / c);
                } else if (l.zero() && l.present()) {
                    zeroClusters.add(g / c);
                }
            }
        }
        assertEquals(src.data(), new TreeMap<>(mapped), "data clusters where they were announced");
        assertEquals(src.zeros(), zeroClusters, "zero clusters");
        Path raw = dir.resolve("guest.raw");
        Qemu.toRaw(file, "qcow2", raw);
        byte[] guest = Files.readAllBytes(raw);
        assertEquals(src.virtualSize(), guest.length);
        for (long g = 0; g * c < guest.length; g++) {
            byte expected = src.data().containsKey(g) ? pattern(g) : 0;
            for (int i = (int) (g * c); i < Math.min(guest.length, (g + 1) * c); i++) {
                if (guest[i] != expected) {
                    throw new AssertionError("guest byte " + i + " is " + guest[i] + ", expected " + expected);
                }
            }
        }
        Files.delete(raw);
    }

    @ParameterizedTest(name = "cluster_size={0} refcount_bits={1} compat={2} extended_l2={3}")
    @CsvSource({
            "512, 1, 1.1, off",
            "512, 64, 1.1, off",
            "512, 16, 0.10, off",
            "4096, 2, 1.1, off",
            "65536, 16, 1.1, off",
            "65536, 8, 1.1, on",
            "2097152, 64, 1.1, off"})
    void scatteredDataZerosAndGaps(long c, int bits, String compat, String extendedL2) throws Exception {
        boolean v3 = compat.equals("1.1");
        Source src = scattered(c, 40, v3);
        Path file = dir.resolve("b.qcow2");
        try (Storage s = FileStorage.create(file, LockMode.NONE)) {
            KeptDataSpace space = new KeptDataSpace(s, src.hostOffsets(), c, c);
            build(s, src, Map.of("cluster_size", String.valueOf(c), "refcount_bits", String.valueOf(bits),
                    "compat", compat, "extended_l2", extendedL2), space);
        }
        assertQemuAgrees(file, src);
    }

    @Test
    void builderSpaceFarOutAndDataBelowIt() throws Exception {
        long c = 4096;
        Source src = scattered(c, 600, true);
        Path file = dir.resolve("far.qcow2");
        try (Storage s = FileStorage.create(file, LockMode.NONE)) {
            // all metadata far past the data: data lies below every allocation the builder makes
            KeptDataSpace space = new KeptDataSpace(s, src.hostOffsets(), c, 20000 * c);
            build(s, src, Map.of("cluster_size", "4k"), space);
        }
        assertQemuAgrees(file, src);
    }

    @Test
    void refcountTableGrowsPastItsEstimate() throws Exception {
        // 512-byte clusters, 64-bit refcounts: one block covers 32 KiB of file, so data far out needs many
        // blocks and a multi-cluster table that then has to count itself
        long c = 512;
        TreeMap<Long, Long> data = new TreeMap<>();
        for (long g = 0; g < 200; g++) {
            data.put(g, 3 + g * 97);
        }
        Source src = new Source(c, 256 * c, data, Set.of());
        Path file = dir.resolve("grow.qcow2");
        try (Storage s = FileStorage.create(file, LockMode.NONE)) {
            KeptDataSpace space = new KeptDataSpace(s, src.hostOffsets(), c, 30000 * c);
            build(s, src, Map.of("cluster_size", "512", "refcount_bits", "64"), space);
        }
        assertQemuAgrees(file, src);
    }

    @Test
    void rejectsWhatQcow2CannotExpress() throws Exception {
        long c = 65536;
        MemoryStorage m = new MemoryStorage("m");
        LayoutBuilder b = new Qcow2Format().layoutBuilder(new CreateSpec(10 * c, Map.of(), null, null),
                LayoutTarget.TargetDefaults.NONE, new BumpHostSpace(m, c));
        assertFalse(b.canKeepDataAt(0), "cluster 0 is the header");
        assertFalse(b.canKeepDataAt(c + 512), "unaligned");
        assertTrue(b.canKeepDataAt(5 * c));
        assertThrows(InvalidRequestException.class, () -> b.addData(0, 0));
        assertThrows(InvalidRequestException.class, () -> b.addData(c + 1, 3 * c));
        b.addData(2 * c, 7 * c);
        assertThrows(InvalidRequestException.class, () -> b.addData(c, 8 * c), "guest order");
        assertThrows(ImageException.class, () -> b.addData(3 * c, 7 * c), "same host cluster twice");

        LayoutBuilder v2 = new Qcow2Format().layoutBuilder(new CreateSpec(10 * c, Map.of("compat", "0.10"),
                "base.qcow2", "qcow2"), LayoutTarget.TargetDefaults.NONE, new BumpHostSpace(m, c));
        assertFalse(v2.supportsZeroClusters());
        assertThrows(UnsupportedFeatureException.class, () -> v2.addZero(0));

        assertThrows(InvalidRequestException.class, () -> new Qcow2Format().layoutBuilder(new CreateSpec(1000,
                Map.of(), null, null), LayoutTarget.TargetDefaults.NONE, new BumpHostSpace(m, c)), "size % 512");
        assertThrows(InvalidRequestException.class, () -> new Qcow2Format().layoutBuilder(new CreateSpec(1L << 40,
                Map.of("cluster_size", "512"), null, null), LayoutTarget.TargetDefaults.NONE,
                new BumpHostSpace(m, c)), "L1 over 32 MiB");
    }

    @Test
    void conversionDefaultsPickTheSourceClusterSize() throws Exception {
        MemoryStorage m = new MemoryStorage("m");
        Qcow2Format f = new Qcow2Format();
        CreateSpec spec = new CreateSpec(1 << 20, Map.of(), null, null);
        assertEquals(4096, f.layoutBuilder(spec, new LayoutTarget.TargetDefaults(4096), new BumpHostSpace(m,
                4096)).clusterSize());
        assertEquals(2 << 20, f.layoutBuilder(spec, new LayoutTarget.TargetDefaults(64 << 20),
                new BumpHostSpace(m, 2 << 20)).clusterSize());
        assertEquals(65536, f.layoutBuilder(spec, LayoutTarget.TargetDefaults.NONE, new BumpHostSpace(m,
                65536)).clusterSize());
    }
}
