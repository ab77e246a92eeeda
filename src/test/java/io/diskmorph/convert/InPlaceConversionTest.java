package io.diskmorph.convert;

import com.fasterxml.jackson.databind.JsonNode;
import io.diskmorph.image.ExitCodes;
import io.diskmorph.testing.Dm;
import io.diskmorph.testing.Oracles;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.*;

/**
 * In-place conversion judged by qemu-img: the converted image checks clean
 * (no corruption, no leaks), holds the same guest content, keeps every data
 * cluster that did not have to move at its original host offset, and carries
 * over backing files; refusals leave the file byte-identical.
 */
class InPlaceConversionTest {
    @TempDir
    Path dir;

    /**
     * A source image recipe: format, size, create options, qemu-io commands;
     * optionally over a backing file of {@code backingFormat} (written with
     * BACKING_IO), or made by {@code qemu-img convert} from a recipe
     * (compressed clusters, a filesystem).
     */
    record Source(String name, String format, String size, String options, List<String> io, String backingFormat,
                  String convertFlags) {
        Source(String name, String format, String size, String options, List<String> io) {
            this(name, format, size, options, io, null, null);
        }

        Source withBacking(String fmt) {
            return new Source(name + " over " + fmt, format, size, options, io, fmt, convertFlags);
        }

        @Override
        public String toString() {
            return name;
        }
    }

    static final List<String> BACKING_IO = List.of("write -P 0x66 0 3M", "write -P 0x77 6M 1M");

    static final List<String> SCATTERED = List.of("write -P 0x11 0 64k", "write -P 0x22 100k 8k",
            "write -P 0x33 1M 200k", "write -P 0x44 5M 3k", "write -P 0x55 7340000 4k");
    static final List<String> WITH_ZEROS = concat(SCATTERED, List.of("write -z 2M 128k", "write -z 6M 64k"));

    static List<String> concat(List<String> a, List<String> b) {
        List<String> l = new ArrayList<>(a);
        l.addAll(b);
        return l;
    }

    /**
     * Pairs with target options, sources over backing files of other
     * formats, and a filesystem. Every driver's default-option conversions
     * to every in-place target are in its conformance test
     * (testing.DriverConformanceSuite).
     */
    static Stream<Arguments> pairs() {
        Source raw = new Source("raw 8M", "raw", "8M", "", SCATTERED);
        Source rawOdd = new Source("raw 7.5M+512", "raw", "7864832", "", SCATTERED);
        Source qed = new Source("qed 64K/4", "qed", "8M", "", WITH_ZEROS);
        Source qed1m = new Source("qed 1M/16", "qed", "12M", "cluster_size=1M,table_size=16", WITH_ZEROS);
        Source qcow2 = new Source("qcow2 64K", "qcow2", "8M", "", WITH_ZEROS);
        Source qcow2v2 = new Source("qcow2 v2 4K", "qcow2", "7864832", "compat=0.10,cluster_size=4k", SCATTERED);
        Source qcow2r1 = new Source("qcow2 2M refcount 1", "qcow2", "8M", "cluster_size=2M,refcount_bits=1", WITH_ZEROS);
        Source qcow2x = new Source("qcow2 extended L2", "qcow2", "8M", "extended_l2=on,cluster_size=128k", WITH_ZEROS);
        Source fs = new Source("qcow2 ext4 filesystem", "qcow2", "24M", "", List.of(), null, "mkfs");
        return Stream.of(
                Arguments.of(rawOdd, "qed", "cluster_size=4k"),
                Arguments.of(raw, "qed", "cluster_size=1M,table_size=2"),
                Arguments.of(rawOdd, "qcow2", "cluster_size=512"),
                Arguments.of(raw, "qcow2", "cluster_size=2M,compat=0.10"),
                Arguments.of(qed1m, "qcow2", ""),
                Arguments.of(qed1m, "qcow2", "cluster_size=2M"),
                Arguments.of(qed.withBacking("qcow2"), "qcow2", ""),
                Arguments.of(qed.withBacking("raw"), "qcow2", "compat=0.10"),
                Arguments.of(qcow2r1, "qed", "cluster_size=1M"),
                Arguments.of(qcow2.withBacking("qed"), "qed", ""),
                Arguments.of(qcow2, "qcow2", "cluster_size=4k"),
                Arguments.of(qcow2v2, "qcow2", "cluster_size=64k"),
                Arguments.of(qcow2, "qcow2", "refcount_bits=64"),
                Arguments.of(qcow2, "qcow2", "compat=0.10"),
                Arguments.of(qcow2.withBacking("qcow2"), "qcow2", "compat=0.10"),
                Arguments.of(qcow2, "qcow2", "extended_l2=on"),
                Arguments.of(qcow2x, "qcow2", "extended_l2=off"),
                Arguments.of(fs, "qed", ""),
                Arguments.of(fs, "qcow2", "cluster_size=2M"));
    }

    @ParameterizedTest(name = "{0} -> {1} {2}")
    @MethodSource("pairs")
    void convertsInPlaceAndQemuAgrees(Source src, String target, String options) throws IOException {
        Path img = make(src);
        Path reference = dir.resolve("reference.raw");
        Qemu.toRaw(img, src.format(), reference);
        List<Qemu.MapLine> before = Qemu.map(img, src.format());
        byte[] original = Files.readAllBytes(img);

        // a dry run changes nothing
        Dm.Result dry = options.isEmpty()
                ? Dm.run("convert", "--in-place", "--dry-run", "--output=json", "-f", src.format(), "-O", target, img)
                : Dm.run("convert", "--in-place", "--dry-run", "--output=json", "-f", src.format(), "-O", target,
                "-o", options, img);
        dry.ok();
        assertArrayEquals(original, Files.readAllBytes(img), "dry run leaves the file byte-identical");

        Dm.Result r = options.isEmpty()
                ? Dm.run("convert", "--in-place", "--output=json", "-f", src.format(), "-O", target, img)
                : Dm.run("convert", "--in-place", "--output=json", "-f", src.format(), "-O", target, "-o", options, img);
        r.ok();
        JsonNode plan = r.json();
        assertEquals(dry.json().get("kept-bytes"), plan.get("kept-bytes"), "the dry run predicted the conversion");
        assertFalse(Files.exists(dir.resolve(img.getFileName() + ".dmjournal")), "journal removed");

        Qemu.Result check = Qemu.check(img, target);
        assertEquals(0, check.exitCode(), "qemu-img check: " + check.out() + check.err());
        assertEquals(0, Qemu.img("compare", "-f", target, "-F", "raw", img, reference).exitCode(),
                "same guest content as before");
        JsonNode info = Qemu.img("info", "--output=json", img).ok().json();
        assertEquals(target, info.get("format").asText());
        if (src.backingFormat() != null) {
            assertEquals("base." + src.backingFormat(), info.get("backing-filename").asText(), "backing file kept");
        }

        Oracles.assertKeptInPlace(before, Qemu.map(img, target), plan.get("moved-bytes").asLong());
        System.out.printf("in place %s -> %s %s: kept %d, moved %d, metadata %d, extra %d bytes%n", src, target,
                options, plan.get("kept-bytes").asLong(), plan.get("moved-bytes").asLong(),
                plan.get("metadata-bytes").asLong(), plan.get("extra-space").asLong());
    }

    @Test
    void refusesAnImageInUseAndLeavesItUnchanged() throws Exception {
        Path img = make(new Source("qed", "qed", "8M", "", SCATTERED));
        byte[] original = Files.readAllBytes(img);
        Process nbd = new ProcessBuilder("qemu-nbd", "-f", "qed", "--persistent", "--socket",
                dir.resolve("nbd.sock").toString(), img.toString()).redirectErrorStream(true)
                .redirectOutput(dir.resolve("nbd.log").toFile()).start();
        try {
            for (int i = 0; i < 400 && !Files.exists(dir.resolve("nbd.sock")); i++) {
                Thread.sleep(25);
            }
            assertTrue(nbd.isAlive(), "qemu-nbd runs");
            Dm.Result r = Dm.run("convert", "--in-place", "-f", "qed", "-O", "qed", "-o", "cluster_size=128k", img);
            assertEquals(ExitCodes.IN_USE, r.exitCode(), r.err());
            assertTrue(r.oneLineError().contains("in use"));
        } finally {
            nbd.destroy();
            nbd.waitFor();
        }
        assertArrayEquals(original, Files.readAllBytes(img));
    }

    @Test
    void refusalsLeaveTheFileByteIdentical() throws IOException {
        Path img = make(new Source("raw", "raw", "8M", "", SCATTERED));
        byte[] original = Files.readAllBytes(img);
        Dm.Result r = Dm.run("convert", "--in-place", "-f", "raw", "-O", "qed", "-o", "no_such_option=1", img);
        assertEquals(ExitCodes.USAGE, r.exitCode());
        assertTrue(r.oneLineError().contains("no_such_option"));
        r = Dm.run("convert", "--in-place", "-f", "raw", "-O", "raw", "-o", "preallocation=full", img);
        assertEquals(ExitCodes.USAGE, r.exitCode());
        r.oneLineError();
        r = Dm.run("convert", "--in-place", "-f", "raw", "-O", "qed", "-o", "cluster_size=3k", img);
        assertNotEquals(0, r.exitCode());
        r.oneLineError();
        assertArrayEquals(original, Files.readAllBytes(img));
        assertEquals(List.of(img.getFileName().toString()), listNames(), "no sidecar left behind");
    }

    /** Images the converter must refuse, each left byte-identical with one line saying why. */
    static Stream<Arguments> refusals() {
        return Stream.of(
                Arguments.of("encrypted (LUKS)", List.of("qemu-img", "create", "-q", "-f", "qcow2", "--object",
                        "secret,id=sec0,data=123456", "-o", "encrypt.format=luks,encrypt.key-secret=sec0", "IMG", "8M"),
                        List.of(), "encrypted"),
                Arguments.of("internal snapshot", List.of("qemu-img", "create", "-q", "-f", "qcow2", "IMG", "8M"),
                        List.of("qemu-io", "-c", "write -P 1 0 64k", "IMG", ";", "qemu-img", "snapshot", "-c", "s1", "IMG"),
                        "snapshot"),
                Arguments.of("external data file", List.of("qemu-img", "create", "-q", "-f", "qcow2", "-o",
                        "data_file=IMG.data", "IMG", "8M"), List.of("qemu-io", "-c", "write -P 1 0 64k", "IMG"),
                        "data file"),
                Arguments.of("dirty", List.of("qemu-img", "create", "-q", "-f", "qcow2", "-o", "lazy_refcounts=on",
                        "IMG", "8M"), List.of("qemu-io", "-c", "write -P 1 0 64k", "-c", "abort", "IMG"), "dirty"));
    }

    @ParameterizedTest(name = "refuses {0}")
    @MethodSource("refusals")
    void refusesWhatItCannotConvertSafely(String name, List<String> create, List<String> then, String why)
            throws IOException {
        Path img = dir.resolve("r.qcow2");
        runAll(create, img);
        if (!then.isEmpty()) {
            runAll(then, img);
        }
        byte[] original = Files.readAllBytes(img);
        Dm.Result r = Dm.run("convert", "--in-place", "-O", "qed", img);
        assertEquals(ExitCodes.UNSUPPORTED, r.exitCode(), r.err());
        assertTrue(r.oneLineError().contains(why), r.err());
        assertArrayEquals(original, Files.readAllBytes(img));
        assertFalse(Files.exists(dir.resolve("r.qcow2.dmjournal")));
    }

    /** Runs ';'-separated commands with IMG replaced by the image path (qemu-io's abort exits non-zero). */
    private static void runAll(List<String> cmds, Path img) {
        List<String> cur = new ArrayList<>();
        for (String c : concat(cmds, List.of(";"))) {
            if (c.equals(";")) {
                Qemu.run(cur.toArray(String[]::new));
                cur.clear();
            } else {
                cur.add(c.replace("IMG", img.toString()));
            }
        }
    }

    @Test
    void refusesWithoutEnoughFreeSpaceAndChangesNothing() throws IOException {
        Path img = make(new Source("qcow2", "qcow2", "8M", "", SCATTERED));
        byte[] original = Files.readAllBytes(img);
        CrashSim sim = new CrashSim(java.util.Map.of(CrashChecker.IMAGE, original));
        ConversionPlan plan = InPlaceConverter.plan(CrashChecker.file(sim), new InPlaceConverter.Request("qcow2",
                "qed", java.util.Map.of(), false));
        sim.usableSpace = plan.extraSpace() - 1;
        var e = assertThrows(io.diskmorph.image.NotEnoughSpaceException.class, () -> InPlaceConverter.convert(
                CrashChecker.file(sim), new InPlaceConverter.Request("qcow2", "qed", java.util.Map.of(), false),
                InPlaceConverter.Progress.NONE));
        assertEquals(ExitCodes.NO_SPACE, e.exitCode());
        assertTrue(sim.log.isEmpty(), "nothing was written: " + sim.log.size() + " operations");
        sim.usableSpace = plan.extraSpace();
        InPlaceConverter.convert(CrashChecker.file(sim), new InPlaceConverter.Request("qcow2", "qed",
                java.util.Map.of(), false), InPlaceConverter.Progress.NONE);
        assertFalse(sim.log.isEmpty(), "with exactly the space the plan asked for, it converts");
    }

    @Test
    void sameFormatConversionKeepsTheSourceOptionsTheUserDidNotChange() throws IOException {
        Path img = dir.resolve("v3.qcow2");
        Qemu.create(img, "qcow2", "8M", "cluster_size=4k,refcount_bits=64,lazy_refcounts=on,compression_type=zstd");
        Qemu.io(img, "qcow2", "write -P 0x5a 1M 300k", "write -P 0x33 5M 64k");
        Path reference = dir.resolve("v3.raw");
        Qemu.toRaw(img, "qcow2", reference);
        Dm.run("convert", "--in-place", "-O", "qcow2", "-o", "cluster_size=16k", img).ok();
        assertEquals(0, Qemu.check(img, "qcow2").exitCode());
        assertEquals(0, Qemu.img("compare", "-f", "qcow2", "-F", "raw", img, reference).exitCode());
        JsonNode info = Qemu.img("info", "--output=json", img).ok().json();
        JsonNode fs = info.get("format-specific").get("data");
        assertEquals(16384, info.get("cluster-size").asLong(), "the option given changed");
        assertEquals("1.1", fs.get("compat").asText());
        assertEquals(64, fs.get("refcount-bits").asInt(), "kept from the source");
        assertTrue(fs.get("lazy-refcounts").asBoolean(), "kept from the source");
        assertEquals("zstd", fs.get("compression-type").asText(), "kept from the source");

        // a v2 source stays v2 unless asked; a v3-only option without compat=1.1 is refused like qemu-img amend
        Path v2 = dir.resolve("v2.qcow2");
        Qemu.create(v2, "qcow2", "8M", "compat=0.10");
        Qemu.io(v2, "qcow2", "write -P 0x44 0 128k");
        Dm.run("convert", "--in-place", "-O", "qcow2", "-o", "cluster_size=4k", v2).ok();
        assertEquals("0.10", Qemu.img("info", "--output=json", v2).ok().json().get("format-specific").get("data")
                .get("compat").asText());
        byte[] before = Files.readAllBytes(v2);
        Dm.Result r = Dm.run("convert", "--in-place", "-O", "qcow2", "-o", "refcount_bits=64", v2);
        assertEquals(ExitCodes.USAGE, r.exitCode(), r.err());
        assertTrue(r.oneLineError().contains("compat=1.1"), r.err());
        assertArrayEquals(before, Files.readAllBytes(v2), "a refused conversion changes nothing");
        Dm.run("convert", "--in-place", "-O", "qcow2", "-o", "compat=1.1,refcount_bits=64", v2).ok();
        assertEquals(0, Qemu.check(v2, "qcow2").exitCode());
    }

    /**
     * raw -> qcow2 keeps data at its guest offsets, so the qcow2 file has
     * holes where the guest wrote nothing. QED may hold no unreferenced space
     * below its end: the data above the holes moves down (and nothing else),
     * the holes stay unallocated in the guest's view, and the file shrinks.
     */
    @ParameterizedTest
    @ValueSource(strings = {"qcow2", "raw"})
    void holesStayUnallocatedInAQedTarget(String via) throws IOException {
        Path img = dir.resolve("holes.img");
        Qemu.create(img, "raw", "64M");
        Qemu.io(img, "raw", "write -P 0x11 1M 2M", "write -P 0x22 20M 1M", "write -P 0x33 40M 3M",
                "write -P 0x44 63M 1M");
        Path reference = dir.resolve("holes.ref");
        Qemu.toRaw(img, "raw", reference);
        if (via.equals("qcow2")) {
            Dm.run("convert", "--in-place", "-f", "raw", "-O", "qcow2", img).ok();
        }
        long sourceData = dataBytes(Qemu.map(img, via), 64 << 10);
        JsonNode plan = Qemu.JSON.readTree(Dm.run("convert", "--in-place", "--output=json", "-O", "qed", img)
                .ok().out());
        assertEquals(0, Qemu.check(img, "qed").exitCode());
        assertEquals(0, Qemu.img("compare", "-f", "qed", "-F", "raw", img, reference).exitCode());
        assertEquals(sourceData, dataBytes(Qemu.map(img, "qed")), "allocation preserved (64 KiB clusters): " + plan);
        // only data above the first hole moves: the 5 MiB written past 3 MiB (and the header zone's cluster)
        assertTrue(plan.get("moved-bytes").asLong() <= (5L << 20) + (64 << 10), "moved: " + plan);
        assertTrue(Files.size(img) < (10L << 20), "the file ends after the data and tables: " + Files.size(img));
    }

    /**
     * A preallocated qcow2 (preallocation=metadata: every guest cluster
     * mapped to a data cluster that is a hole of the file) converts without
     * reading, moving or allocating its zeros: the target maps only what was
     * written, and stays small.
     */
    @ParameterizedTest
    @CsvSource({"qed, ''", "qcow2, cluster_size=64k", "qcow2, refcount_bits=64"})
    void zerosOfAPreallocatedImageNeverMove(String target, String options) throws IOException {
        Path img = dir.resolve("prealloc.qcow2");
        Qemu.create(img, "qcow2", "256M", "cluster_size=4096", "preallocation=metadata");
        Qemu.io(img, "qcow2", "write -P 0x5a 8M 1M", "write -P 0x5b 200M 64k");
        Path reference = dir.resolve("prealloc.ref");
        Qemu.toRaw(img, "qcow2", reference);
        long allocatedBefore = allocatedBytes(img);
        List<String> args = new ArrayList<>(List.of("convert", "--in-place", "--output=json", "-O", target));
        if (!options.isEmpty()) {
            args.addAll(List.of("-o", options));
        }
        args.add(img.toString());
        JsonNode plan = Dm.run(args.toArray()).ok().json();
        assertTrue(plan.get("zeroed-data-bytes").asLong() >= (250L << 20), "zeros found by metadata: " + plan);
        assertTrue(plan.get("moved-bytes").asLong() <= (2L << 20), "moved: " + plan);
        assertEquals(0, Qemu.check(img, target).exitCode());
        assertEquals(0, Qemu.img("compare", "-f", target, "-F", "raw", img, reference).exitCode());
        assertEquals((1L << 20) + (64 << 10), dataBytes(Qemu.map(img, target)), "only what was written is data");
        assertTrue(allocatedBytes(img) <= allocatedBefore, "no zeros written: " + allocatedBytes(img) + " > "
                + allocatedBefore);
        assertTrue(plan.get("extra-space").asLong() < (4L << 20), "extra space: " + plan);
    }

    /**
     * Over a backing file, a data cluster whose bytes are a hole of the file
     * reads zeros and must keep hiding the backing file: a zero cluster.
     */
    @Test
    void zerosInHolesOverABackingFileBecomeZeroClusters() throws IOException {
        Path base = dir.resolve("base.qcow2");
        Qemu.create(base, "qcow2", "16M");
        Qemu.io(base, "qcow2", "write -P 0x77 0 16M");
        Path img = dir.resolve("over.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", img, "16M").ok();
        Qemu.io(img, "qcow2", "write -P 0x12 4M 1M");
        long host = Qemu.map(img, "qcow2").stream().filter(m -> m.start() == 4 << 20).findFirst().orElseThrow()
                .offset();
        Qemu.run("fallocate", "-p", "-o", String.valueOf(host + (256 << 10)), "-l", String.valueOf(256 << 10),
                img.toString()).ok(); // 256 KiB of the written MiB now read zeros, over a backing file of 0x77
        Path reference = dir.resolve("over.ref");
        Qemu.toRaw(img, "qcow2", reference);
        JsonNode plan = Dm.run("convert", "--in-place", "--output=json", "-O", "qed", img).ok().json();
        assertEquals(0, Qemu.check(img, "qed").exitCode());
        assertEquals(0, Qemu.img("compare", "-f", "qed", "-F", "raw", img, reference).exitCode());
        assertEquals(4, plan.get("zero-clusters").asLong(), "zero clusters: " + plan);
        assertEquals(256 << 10, plan.get("zeroed-data-bytes").asLong(), plan.toString());
        assertEquals(0, plan.get("moved-bytes").asLong() % (64 << 10));
    }

    private static long dataBytes(List<Qemu.MapLine> map) {
        return dataBytes(map, 1);
    }

    /** Bytes of the top layer's data, counted in whole units of {@code unit} bytes (a target cluster). */
    private static long dataBytes(List<Qemu.MapLine> map, long unit) {
        java.util.TreeSet<Long> units = new java.util.TreeSet<>();
        long bytes = 0;
        for (Qemu.MapLine m : map) {
            if (m.data() && m.depth() == 0) {
                if (unit == 1) {
                    bytes += m.length();
                }
                for (long u = m.start() / unit; u < Math.ceilDiv(m.start() + m.length(), unit); u++) {
                    units.add(u);
                }
            }
        }
        return unit == 1 ? bytes : units.size() * unit;
    }

    @Test
    void aSparseDataClusterIsNotMistakenForAHoleAnotherClusterMayUse() throws IOException {
        // guest 8M is stored at a host cluster whose bytes are a hole (zeros, punched); guest offset equal to
        // that host offset is unallocated: it must not map there too
        Path img = dir.resolve("sparse-data.qcow2");
        Qemu.create(img, "qcow2", "16M");
        Qemu.io(img, "qcow2", "write -P 0x55 0 1M", "write -P 0x66 8M 64k", "write -P 0x77 9M 64k");
        long host = Qemu.map(img, "qcow2").stream().filter(m -> m.start() == 8 << 20).findFirst().orElseThrow()
                .offset();
        assertTrue(host > 1 << 20 && host < 8 << 20, "the layout this test needs: host " + host);
        Qemu.run("fallocate", "-p", "-o", String.valueOf(host), "-l", "65536", img.toString()).ok();
        Path reference = dir.resolve("sparse-data.ref");
        Qemu.toRaw(img, "qcow2", reference);
        Dm.run("convert", "--in-place", "-f", "qcow2", "-O", "qed", img).ok();
        assertEquals(0, Qemu.check(img, "qed").exitCode());
        assertEquals(0, Qemu.img("compare", "-f", "qed", "-F", "raw", img, reference).exitCode());
    }

    @Test
    void keepRollbackThenRollbackRestoresTheOriginalExactly() throws IOException {
        Path img = make(new Source("raw", "raw", "8M", "", SCATTERED));
        byte[] original = Files.readAllBytes(img);
        Dm.run("convert", "--in-place", "--keep-rollback", "-f", "raw", "-O", "qed", img).ok();
        assertEquals(0, Qemu.check(img, "qed").exitCode());
        assertTrue(Files.exists(dir.resolve(img.getFileName() + ".dmrollback")));
        Dm.run("info", img).ok(); // reading does not spoil the rollback
        Dm.run("rollback", img).ok();
        assertArrayEquals(original, Files.readAllBytes(img), "byte-identical original");
        assertEquals(List.of(img.getFileName().toString()), listNames());
    }

    @Test
    void rollbackRefusesAfterTheImageWasWritten() throws IOException {
        Path img = make(new Source("raw", "raw", "8M", "", SCATTERED));
        Dm.run("convert", "--in-place", "--keep-rollback", "-f", "raw", "-O", "qed", img).ok();
        Qemu.io(img, "qed", "write -P 0x99 3M 4k");
        byte[] written = Files.readAllBytes(img);
        Dm.Result r = Dm.run("rollback", img);
        assertNotEquals(0, r.exitCode());
        assertTrue(r.oneLineError().contains("written"), r.err());
        assertArrayEquals(written, Files.readAllBytes(img), "a refused rollback changes nothing");
    }

    @Test
    void interruptedConversionIsReportedAndRecovered() throws IOException {
        Path img = make(new Source("raw", "raw", "8M", "", SCATTERED));
        Path reference = dir.resolve("reference.raw");
        Files.copy(img, reference);
        // a journal as a crashed conversion leaves it: written, image partly changed
        CrashSim sim = new CrashSim(java.util.Map.of(CrashChecker.IMAGE, Files.readAllBytes(img)));
        InPlaceConverter.convert(CrashChecker.file(sim), new InPlaceConverter.Request("raw", "qed",
                java.util.Map.of(), false), InPlaceConverter.Progress.NONE);
        int journalSynced = -1;
        for (int i = 0; i < sim.log.size(); i++) {
            if (sim.log.get(i) instanceof CrashSim.DirSync) {
                journalSynced = i + 1;
                break;
            }
        }
        var state = sim.crashState(journalSynced + 2, CrashSim.FileFate.ALL, true, 0);
        Files.write(img, state.get(CrashChecker.IMAGE));
        Files.write(dir.resolve(img.getFileName() + ".dmjournal"), state.get(CrashChecker.IMAGE + ".dmjournal"));

        for (String cmd : new String[]{"info", "map", "check"}) {
            Dm.Result r = Dm.run(cmd, img);
            assertNotEquals(0, r.exitCode(), cmd);
            assertTrue(r.oneLineError().contains("recover"), cmd + ": " + r.err());
        }
        Dm.Result c = Dm.run("convert", "--in-place", "-O", "qed", img);
        assertEquals(ExitCodes.INTERRUPTED_CONVERSION, c.exitCode());
        assertTrue(c.oneLineError().contains("recover"), c.err());
        // the journal was written for the simulated file, not this one: recover says so and leaves both alone
        byte[] before = Files.readAllBytes(img);
        Dm.Result refused = Dm.run("recover", img);
        assertEquals(ExitCodes.JOURNAL_MISMATCH, refused.exitCode(), refused.err());
        assertTrue(refused.oneLineError().contains("--accept-moved"), refused.err());
        assertArrayEquals(before, Files.readAllBytes(img));
        assertTrue(Files.exists(dir.resolve(img.getFileName() + ".dmjournal")));
        // as the copy of the interrupted image it is, its content identifies it
        Dm.run("recover", "--accept-moved", img).ok();
        assertEquals(0, Qemu.img("compare", "-f", "raw", "-F", "raw", img, reference).exitCode());
        assertEquals(List.of(img.getFileName().toString(), "reference.raw"), listNames());
        assertTrue(Dm.run("recover", img).ok().out().contains("nothing to do"));
    }

    private List<String> listNames() throws IOException {
        try (var s = Files.list(dir)) {
            return s.map(p -> p.getFileName().toString()).filter(n -> !n.startsWith("nbd")).sorted().toList();
        }
    }

    Path make(Source s) throws IOException {
        Path p = dir.resolve("img." + s.format());
        if (s.convertFlags() != null) {
            Path raw = dir.resolve("content.raw");
            if (s.convertFlags().equals("mkfs")) {
                Path tree = Files.createDirectories(dir.resolve("tree/etc"));
                for (int i = 0; i < 40; i++) {
                    Files.writeString(tree.resolve("file" + i + ".txt"), ("line " + i + "\n").repeat(300 * (i + 1)));
                }
                Qemu.run("truncate", "-s", s.size(), raw.toString()).ok();
                Qemu.run("mke2fs", "-q", "-t", "ext4", "-d", dir.resolve("tree").toString(), "-F", raw.toString()).ok();
                Qemu.img("convert", "-f", "raw", "-O", s.format(), raw, p).ok();
            } else {
                Qemu.create(raw, "raw", s.size());
                Qemu.io(raw, "raw", s.io().toArray(String[]::new));
                Qemu.img("convert", s.convertFlags(), "-f", "raw", "-O", s.format(), raw, p).ok();
            }
            Files.delete(raw);
            return p;
        }
        List<String> opts = new ArrayList<>();
        if (!s.options().isEmpty()) {
            opts.add(s.options());
        }
        if (s.backingFormat() != null) {
            Path base = dir.resolve("base." + s.backingFormat());
            Qemu.create(base, s.backingFormat(), s.size());
            Qemu.io(base, s.backingFormat(), BACKING_IO.toArray(String[]::new));
            opts.add("backing_file=base." + s.backingFormat());
            opts.add("backing_fmt=" + s.backingFormat());
        }
        Qemu.create(p, s.format(), s.size(), opts.toArray(String[]::new));
        if (!s.io().isEmpty()) {
            Qemu.io(p, s.format(), s.io().toArray(String[]::new));
        }
        return p;
    }

    private static long allocatedBytes(Path p) throws IOException {
        try (var s = io.diskmorph.storage.FileStorage.open(p, true, io.diskmorph.storage.LockMode.NONE)) {
            return s.allocatedBytes();
        }
    }
}
