package io.diskmorph.testing;

import com.fasterxml.jackson.databind.JsonNode;
import io.diskmorph.image.CommitRecord;
import io.diskmorph.image.CreateSpec;
import io.diskmorph.image.DiskImage;
import io.diskmorph.image.FormatOptions;
import io.diskmorph.image.ExitCodes;
import io.diskmorph.image.FormatRegistry;
import io.diskmorph.image.ImageException;
import io.diskmorph.image.ImageFormat;
import io.diskmorph.image.Images;
import io.diskmorph.image.LayoutBuilder;
import io.diskmorph.image.ExitCodes;
import io.diskmorph.image.LayoutTarget;
import io.diskmorph.image.Mapping;
import io.diskmorph.image.OpenOptions;
import io.diskmorph.storage.FileStorage;
import io.diskmorph.storage.LockMode;
import io.diskmorph.storage.Storage;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.TreeMap;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * What every format driver must do, judged by qemu-img. A driver's test
 * class extends this and answers three questions ({@link #format()},
 * {@link #layouts()}, {@link #features()}); everything else is derived:
 * the driver and the in-place targets come from {@link FormatRegistry}, the
 * sample images from the layouts (made by qemu-img and qemu-io, with data,
 * zero writes, holes, a partial cluster and a write that ends at the last
 * byte of the disk; also over a backing file and with compressed clusters
 * where the format has them).
 *
 * <p>Checks: probing never throws and recognises the format; the mapping
 * walk keeps the {@link DiskImage#mapping} contract; guest bytes and
 * {@code map --output=json} equal qemu-img's; random guest writes leave
 * an image qemu-img checks clean and reads as written; the layout builder
 * is deterministic and its layout is what it was told; in-place conversion
 * to every registered target keeps the guest content, and a dry run writes
 * nothing.
 *
 * <p>The sample images are made once per class (qemu-img is the slow part)
 * and never written: tests that change an image work on a copy.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
public abstract class DriverConformanceSuite {

    /** The format's name, as qemu-img spells it and {@link FormatRegistry#byName} knows it. */
    protected abstract String format();

    /**
     * Layouts qemu-img can make, each a virtual size and {@code qemu-img
     * create -o} options (empty for none). Sizes are at least 4 MiB (the
     * sample content needs the room) and small (the in-place matrix copies
     * each sample per target); where the format has clusters, one size must
     * end inside a cluster.
     */
    protected abstract List<Layout> layouts();

    /** What the driver and the format can do, which decides the samples and checks that apply. */
    protected abstract Set<Feature> features();

    public enum Feature {
        /** Guest writes through {@link DiskImage#write}, and create. Without it, writes must be refused. */
        WRITE,
        /** The format has backing files: a sample over a raw backing file. */
        BACKING_FILES,
        /** The format has compressed clusters: a sample made by {@code qemu-img convert -c}. */
        COMPRESSED_CLUSTERS
    }

    /**
     * The format both tools probe an image of layout {@code l} as: the
     * driver's, unless qemu's probe cannot see it (a fixed VHD, whose only
     * magic is at the end of the file, probes as raw; tests name its format).
     */
    protected String probedFormat(Layout l) {
        return format();
    }

    /** The virtual size an image created with layout {@code l} has (VHD rounds to a CHS geometry). */
    protected long createdSize(Layout l) {
        return l.size();
    }

    /** One layout: a name for test reports, the virtual size, qemu-img create options ("" for none). */
    public record Layout(String name, long size, String options) {
    }

    /** A sample image made by qemu; {@code guest} is its {@code qemu-img convert -O raw}. */
    protected record Sample(String name, Path image, Path guest, boolean backed) {
        @Override
        public String toString() {
            return name;
        }
    }

    private static final long MIN_SIZE = 4L << 20;
    /** Every size a probe gets garbage of: qemu's probe reads 512 bytes, ours passes up to 4 KiB. */
    private static final int PROBE_SIZES = FormatRegistry.PROBE_BYTES;

    /** One directory for the class: the samples outlive a test method (a field @TempDir would not). */
    private Path dir;

    private List<Sample> samples;
    /** The layout each sample was made with (the first one for the backed and compressed samples). */
    private final java.util.Map<Path, Layout> layoutOf = new java.util.HashMap<>();
    private int scratchCount;

    @BeforeAll
    void classDirectory(@TempDir Path d) {
        dir = d;
    }

    // ------------------------------------------------------------------ samples

    /**
     * What every sample holds: data at the start (the header zone of an
     * in-place target), a partial cluster, a run across clusters, a zero
     * write over data and one where nothing was written, holes, and a write
     * that ends at the last byte of the disk, starting mid-sector.
     */
    private static List<String> content(long size) {
        return List.of("write -P 0x11 0 64k", "write -P 0x22 100k 8k", "write -P 0x33 1M 320k",
                "write -z 1088k 64k", "write -z 2M 128k", "write -P 0x44 " + (size - 3000) + " 3000");
    }

    /** The samples, made on first use: one per layout, then one over a backing file, one compressed. */
    protected final List<Sample> samples() {
        if (samples == null) {
            samples = makeSamples();
        }
        return samples;
    }

    private List<Sample> makeSamples() {
        String f = format();
        Path d = dir.resolve("samples");
        List<Sample> out = new ArrayList<>();
        List<Layout> layouts = layouts();
        assertFalse(layouts.isEmpty(), "a driver names at least one layout");
        try {
            Files.createDirectories(d);
            for (int i = 0; i < layouts.size(); i++) {
                Layout l = layouts.get(i);
                assertTrue(l.size() >= MIN_SIZE, l + ": the sample content needs 4 MiB");
                Path img = d.resolve("s" + i + "." + f);
                Qemu.create(img, f, String.valueOf(l.size()), options(l.options()));
                Qemu.io(img, f, content(l.size()).toArray(String[]::new));
                out.add(sample(f + " " + l.name(), img, false, f));
                layoutOf.put(img, l);
            }
            Layout first = layouts.getFirst();
            if (features().contains(Feature.BACKING_FILES)) {
                // shorter than the overlay: the overlay's tail reads zeros past the backing file's end
                Path base = d.resolve("base.raw");
                long baseSize = first.size() - (1 << 20);
                Qemu.create(base, "raw", String.valueOf(baseSize));
                Qemu.io(base, "raw", "write -P 0x66 0 " + baseSize);
                Path img = d.resolve("backed." + f);
                Qemu.create(img, f, String.valueOf(first.size()), options(first.options(),
                        "backing_file=base.raw", "backing_fmt=raw"));
                Qemu.io(img, f, content(first.size()).toArray(String[]::new));
                out.add(sample(f + " " + first.name() + " over raw", img, true, f));
                layoutOf.put(img, first);
            }
            if (features().contains(Feature.COMPRESSED_CLUSTERS)) {
                Path raw = d.resolve("compressed-content.raw");
                Qemu.create(raw, "raw", String.valueOf(first.size()));
                Qemu.io(raw, "raw", content(first.size()).toArray(String[]::new));
                Path img = d.resolve("compressed." + f);
                List<String> cmd = new ArrayList<>(List.of("convert", "-c", "-f", "raw", "-O", f));
                if (!first.options().isEmpty()) {
                    cmd.addAll(List.of("-o", first.options()));
                }
                cmd.addAll(List.of(raw.toString(), img.toString()));
                if (Qemu.img(cmd.toArray()).exitCode() != 0) {
                    // qemu-img 7.2 convert -c -O qcow exits 1, silently, after writing the whole image (its
                    // closing zero-length compressed write is refused by qcow's driver): judge the image instead
                    Qemu.img("compare", "-f", "raw", "-F", f, raw, img).ok();
                }
                Files.delete(raw);
                // some clusters overwritten uncompressed, one zeroed
                Qemu.io(img, f, "write -P 0x55 64k 8k", "write -z 1M 64k");
                out.add(sample(f + " " + first.name() + " compressed", img, false, f));
                layoutOf.put(img, first);
            }
        } catch (IOException e) {
            throw new AssertionError("cannot make the samples", e);
        }
        return List.copyOf(out);
    }

    private static String[] options(String given, String... more) {
        List<String> o = new ArrayList<>();
        if (!given.isEmpty()) {
            o.add(given);
        }
        o.addAll(List.of(more));
        return o.toArray(String[]::new);
    }

    private static Sample sample(String name, Path image, boolean backed, String format) {
        Path guest = image.resolveSibling(image.getFileName() + ".guest");
        Qemu.toRaw(image, format, guest);
        return new Sample(name, image, guest, backed);
    }

    /** A fresh directory holding a copy of {@code s} (and its backing file): tests that write use it. */
    protected final Path copyOf(Sample s) throws IOException {
        Path d = Files.createDirectories(dir.resolve("scratch-" + ++scratchCount));
        if (s.backed()) {
            Files.copy(s.image().resolveSibling("base.raw"), d.resolve("base.raw"));
        }
        return Files.copy(s.image(), d.resolve(s.image().getFileName()));
    }

    protected final ImageFormat driver() throws IOException {
        ImageFormat d = FormatRegistry.byName(format());
        assertTrue(d.supported(), format() + " has a driver");
        return d;
    }

    /** One dynamic test per sample; a failure names the sample (reports show only an index). */
    private Stream<DynamicTest> perSample(Check check) {
        return samples().stream().map(s -> DynamicTest.dynamicTest(s.name(), () -> named(s.name(), () -> check.run(s))));
    }

    private static void named(String what, Executable check) throws Throwable {
        try {
            check.execute();
        } catch (AssertionError e) {
            throw new AssertionError(what + ": " + e.getMessage(), e);
        }
    }

    @FunctionalInterface
    private interface Check {
        void run(Sample s) throws Exception;
    }

    /** The layouts exercise a partial last cluster where the format has clusters. */
    @Test
    void layoutsIncludeAPartialLastCluster() throws Exception {
        long partial = 0;
        long clustered = 0;
        for (Sample s : samples()) {
            try (DiskImage img = open(s.image())) {
                if (img.clusterSize() > 0) {
                    clustered++;
                    partial += img.virtualSize() % img.clusterSize() != 0 ? 1 : 0;
                }
            }
        }
        assertTrue(clustered == 0 || partial > 0, "no sample ends inside a cluster: give a layout such a size");
    }

    // ------------------------------------------------------------------ probing

    /**
     * Random bytes, zeros and 0xff of every length up to the probe buffer:
     * the driver's probe (called directly, since the registry swallows a
     * probe's exceptions) answers 0..100 and never throws.
     */
    @Test
    void probeNeverThrowsOnGarbage() throws Exception {
        ImageFormat d = driver();
        Random r = new Random(format().hashCode());
        for (int n = 0; n <= PROBE_SIZES; n++) {
            byte[] random = new byte[n];
            r.nextBytes(random);
            byte[] ones = new byte[n];
            Arrays.fill(ones, (byte) 0xff);
            for (byte[] b : List.of(random, new byte[n], ones)) {
                assertProbeAnswers(d, b, n);
                assertProbeAnswers(d, b, n + (1L << 40)); // a longer file whose head was cut to the buffer
            }
        }
    }

    /**
     * Every prefix of the format's own header, and the header with any one
     * of its first 512 bytes changed: the probe answers and never throws.
     */
    @TestFactory
    Stream<DynamicTest> probeNeverThrowsOnTruncatedOrDamagedHeaders() {
        return perSample(s -> {
            ImageFormat d = driver();
            byte[] head = readHead(s.image());
            long size = Files.size(s.image());
            for (int n = 0; n <= head.length; n++) {
                byte[] prefix = Arrays.copyOf(head, n);
                assertProbeAnswers(d, prefix, n);
                assertProbeAnswers(d, prefix, size);
            }
            Random r = new Random(s.name().hashCode());
            for (int i = 0; i < Math.min(512, head.length); i++) {
                for (byte v : new byte[]{0, (byte) 0xff, (byte) r.nextInt(256), (byte) (head[i] ^ 0x80)}) {
                    byte[] damaged = head.clone();
                    damaged[i] = v;
                    assertProbeAnswers(d, damaged, size);
                }
            }
        });
    }

    private static void assertProbeAnswers(ImageFormat d, byte[] head, long fileSize) {
        for (String name : new String[]{null, "image." + d.name()}) {
            int score;
            try {
                score = d.probe(ByteBuffer.wrap(head).asReadOnlyBuffer(), fileSize, name);
            } catch (RuntimeException e) {
                throw new AssertionError(d.name() + " probe threw on " + head.length + " bytes (file size "
                        + fileSize + ") starting " + hex(head), e);
            }
            if (score < 0 || score > 100) {
                fail(d.name() + " probe scored " + score + " on " + head.length + " bytes starting " + hex(head));
            }
        }
    }

    private static String hex(byte[] b) {
        return HexFormat.of().formatHex(b, 0, Math.min(32, b.length));
    }

    /** qemu-made samples probe as this driver, in diskmorph and in qemu-img. */
    @TestFactory
    Stream<DynamicTest> samplesProbeAsTheDriver() {
        return perSample(s -> assertProbesAsDriver(s.image(), probedFormat(layoutOf.get(s.image()))));
    }

    /** An image the driver creates probes as the driver in both tools, and qemu-img checks it clean. */
    @Test
    void imagesTheDriverCreatesProbeAsIt() throws Exception {
        assumeTrue(features().contains(Feature.WRITE), "the driver does not create images");
        for (Layout l : layouts()) {
            Path img = dmCreate(l);
            assertProbesAsDriver(img, probedFormat(l));
            Oracles.assertCheckClean(img, format());
            assertEquals(createdSize(l), Qemu.img("info", "--output=json", "-f", format(), img).ok().json()
                    .get("virtual-size").asLong(), "virtual size of " + l);
        }
    }

    private void assertProbesAsDriver(Path img, String expected) throws IOException {
        byte[] head = readHead(img);
        assertEquals(expected, FormatRegistry.probe(ByteBuffer.wrap(head), Files.size(img),
                img.getFileName().toString()).name(), "diskmorph probes " + img);
        assertEquals(expected, Qemu.img("info", "--output=json", img).ok().json().get("format").asText(),
                "qemu-img probes " + img);
    }

    private static byte[] readHead(Path img) throws IOException {
        try (var in = Files.newInputStream(img)) {
            return in.readNBytes(FormatRegistry.PROBE_BYTES);
        }
    }

    // ------------------------------------------------------------------ mapping and reading

    /**
     * The mapping walk over the whole disk keeps the contract: every answer
     * is 1..max bytes and ends at or before the virtual size (asked with a
     * max that reaches past it; asked at or past the end, it is refused),
     * data lies inside the data file and no host byte serves two guest
     * ranges; asked in big and in small odd pieces, the merged answers are
     * the same.
     */
    @TestFactory
    Stream<DynamicTest> mappingWalkKeepsTheContract() {
        return perSample(s -> {
            try (DiskImage img = open(s.image())) {
                assertMappingContract(img);
            }
        });
    }

    /** See {@link #mappingWalkKeepsTheContract()}; also for images diskmorph wrote. */
    private static void assertMappingContract(DiskImage img) throws IOException {
        long size = img.virtualSize();
        assertEquals(1, img.mapping(size - 1, Long.MAX_VALUE / 4).length(), "the last byte, asked with a huge max");
        for (long at : new long[]{size, size + 1, size + (1L << 40)}) {
            // no answer of 1..max bytes exists there: a zero-length one would stall every caller's walk
            assertThrows(ImageException.class, () -> img.mapping(at, 1), "mapping asked at " + at + ", past the disk");
        }
        List<Extent> whole = walk(img, -1);
        assertEquals(merge(whole), merge(walk(img, 3000)), "mapping asked in 3000-byte pieces");
        long c = img.clusterSize();
        if (c > 0) {
            assertEquals(merge(whole), merge(walk(img, c + 512)), "mapping asked in pieces of a cluster and a sector");
        }
        TreeMap<Long, Extent> byHost = new TreeMap<>();
        for (Extent e : merge(whole)) {
            if (e.m() instanceof Mapping.Data data) {
                long dataEnd = img.dataStorage(data).size(); // the file the answer names, if it names one
                assertTrue(data.hostOffset() >= 0 && data.hostOffset() + data.length() <= dataEnd,
                        "data inside the data file (" + dataEnd + " bytes): " + e);
                byHost.put(data.hostOffset(), e);
            }
        }
        long hostEnd = -1;
        Extent prev = null;
        for (Map.Entry<Long, Extent> h : byHost.entrySet()) {
            assertTrue(h.getKey() >= hostEnd, "host bytes mapped twice: " + prev + " and " + h.getValue());
            hostEnd = h.getKey() + h.getValue().m().length();
            prev = h.getValue();
        }
    }

    /** One mapping answer and the guest offset it was asked at. */
    private record Extent(long start, Mapping m) {
    }

    /** Walks the disk from 0, each call asked for {@code step} bytes (-1: past the end of the disk). */
    private static List<Extent> walk(DiskImage img, long step) throws IOException {
        long size = img.virtualSize();
        long c = img.clusterSize();
        List<Extent> out = new ArrayList<>();
        for (long pos = 0; pos < size; ) {
            long max = step < 0 ? size - pos + (1 << 20) + 7 : step;
            Mapping m = img.mapping(pos, max);
            Extent e = new Extent(pos, m);
            assertTrue(m.length() >= 1 && m.length() <= max, "answer of 1.." + max + " bytes: " + e);
            assertTrue(pos + m.length() <= size, "answer crosses the virtual size " + size + ": " + e);
            switch (m) {
                case Mapping.Data d -> assertTrue(d.hostOffset() >= 0, "data at a host offset: " + e);
                case Mapping.Compressed z -> assertTrue(z.hostOffset() > 0 && z.compressedLength() > 0
                        && z.offsetInCluster() >= 0 && (c <= 0 || z.offsetInCluster() + z.length() <= c),
                        "compressed piece inside its cluster: " + e);
                case Mapping.Zero z -> assertTrue(z.hostOffset() >= -1, e.toString());
                case Mapping.Unallocated u -> assertTrue(u.hostOffset() >= -1, e.toString());
            }
            out.add(e);
            pos += m.length();
        }
        return out;
    }

    /** Adjacent answers that describe one run, joined (callers merge; the contract allows pieces). */
    private static List<Extent> merge(List<Extent> in) {
        List<Extent> out = new ArrayList<>();
        for (Extent e : in) {
            Extent last = out.isEmpty() ? null : out.getLast();
            Mapping joined = last == null ? null : join(last.m(), e.m());
            if (joined != null) {
                out.set(out.size() - 1, new Extent(last.start(), joined));
            } else {
                out.add(e);
            }
        }
        return out;
    }

    private static Mapping join(Mapping a, Mapping b) {
        long n = a.length() + b.length();
        return switch (a) {
            case Mapping.Data x when b instanceof Mapping.Data y && x.file() == y.file()
                    && x.hostOffset() + x.length() == y.hostOffset() -> new Mapping.Data(n, x.hostOffset(), x.file());
            case Mapping.Zero x when b instanceof Mapping.Zero y && follows(x.hostOffset(), x.length(), y.hostOffset()) ->
                    new Mapping.Zero(n, x.hostOffset());
            case Mapping.Unallocated x when b instanceof Mapping.Unallocated y
                    && follows(x.hostOffset(), x.length(), y.hostOffset()) -> new Mapping.Unallocated(n, x.hostOffset());
            case Mapping.Compressed x when b instanceof Mapping.Compressed y && x.hostOffset() == y.hostOffset()
                    && x.compressedLength() == y.compressedLength()
                    && x.offsetInCluster() + x.length() == y.offsetInCluster() ->
                    new Mapping.Compressed(n, x.hostOffset(), x.compressedLength(), x.offsetInCluster());
            default -> null;
        };
    }

    private static boolean follows(long host, long length, long next) {
        return host < 0 ? next < 0 : host + length == next;
    }

    /** Guest bytes read through diskmorph, in uneven pieces, equal {@code qemu-img convert -O raw}. */
    @TestFactory
    Stream<DynamicTest> guestBytesEqualQemus() {
        return perSample(s -> {
            try (DiskImage img = open(s.image())) {
                assertGuestBytes(img, Files.readAllBytes(s.guest()), s.name());
            }
        });
    }

    private static void assertGuestBytes(DiskImage img, byte[] expected, String what) throws IOException {
        assertEquals(expected.length, img.virtualSize(), "virtual size of " + what);
        byte[] actual = new byte[expected.length];
        ByteBuffer b = ByteBuffer.wrap(actual);
        // uneven pieces: reads that start and end inside clusters, sectors and compressed clusters
        int step = 7 * 4096 + 512 + 3;
        while (b.hasRemaining()) {
            int n = Math.min(step, b.remaining());
            img.read(b.slice(b.position(), n), b.position());
            b.position(b.position() + n);
        }
        int diff = Arrays.mismatch(expected, actual);
        assertEquals(-1, diff, "guest bytes of " + what + " differ from qemu's at offset " + diff);
    }

    /**
     * False for a format whose qemu 7.2 driver reports no block status
     * (vhdx): qemu-img then maps the whole disk as one run of data without
     * host offsets, and diskmorph's map, which says where the data lives,
     * is held to what qemu does report.
     */
    protected boolean qemuReportsBlockStatus() {
        return true;
    }

    /**
     * {@code map --output=json} equals qemu-img's, entry by entry, with -f and
     * probed. Without qemu block status ({@link #qemuReportsBlockStatus()}):
     * qemu's map is one present data run over the disk, and diskmorph's runs
     * cover the disk in order, each at depth 0, data runs at host offsets
     * that hold the guest bytes qemu reads, the other runs reading zeros.
     */
    @TestFactory
    Stream<DynamicTest> mapEqualsQemus() {
        return perSample(s -> {
            if (!qemuReportsBlockStatus()) {
                assertMapHoldsWhatQemuReads(s);
                return;
            }
            assertEquals(Qemu.map(s.image(), format()), Dm.map(s.image(), format()), "map -f " + format());
            assertEquals(Qemu.map(s.image(), null), Dm.map(s.image(), null), "map, probed");
        });
    }

    private void assertMapHoldsWhatQemuReads(Sample s) throws IOException {
        assertMapHoldsWhatQemuReads(s.image(), format(), s.guest());
    }

    /** Formats whose every image qemu-img 7.2 maps as one run of data (its driver reports no block status). */
    private static final Set<String> NO_QEMU_BLOCK_STATUS = Set.of("vhdx");

    /**
     * qemu-img's map of an image; for a format qemu cannot map, diskmorph's,
     * each data run proven to sit at a host offset holding the bytes qemu
     * reads there, each other run proven to read zeros.
     */
    private List<Qemu.MapLine> verifiedMap(Path image, String fmt) throws IOException {
        if (!NO_QEMU_BLOCK_STATUS.contains(fmt)) {
            return Qemu.map(image, fmt);
        }
        Path raw = image.resolveSibling(image.getFileName() + ".qemu-reads.raw");
        Files.deleteIfExists(raw);
        Qemu.toRaw(image, fmt, raw);
        try {
            return assertMapHoldsWhatQemuReads(image, fmt, raw);
        } finally {
            Files.delete(raw);
        }
    }

    /** Compared a MiB at a time: samples may be sparse GiBs. */
    private List<Qemu.MapLine> assertMapHoldsWhatQemuReads(Path image, String fmt, Path guestRaw) throws IOException {
        long size = Files.size(guestRaw);
        assertEquals(List.of(new Qemu.MapLine(0, size, 0, true, false, true, -1)), Qemu.map(image, fmt),
                "qemu-img maps the disk as one run of data");
        List<Qemu.MapLine> map = Dm.map(image, fmt);
        assertEquals(map, Dm.map(image, null), "map, probed");
        long fileLength = Files.size(image);
        long pos = 0;
        try (FileChannel guest = FileChannel.open(guestRaw); FileChannel file = FileChannel.open(image)) {
            ByteBuffer g = ByteBuffer.allocate(1 << 20);
            ByteBuffer f = ByteBuffer.allocate(1 << 20);
            for (Qemu.MapLine l : map) {
                assertEquals(pos, l.start(), "runs follow each other: " + map);
                assertEquals(0, l.depth(), l.toString());
                if (l.data()) {
                    assertTrue(l.offset() >= 0 && l.offset() + l.length() <= fileLength, "data inside the file: " + l);
                } else {
                    assertTrue(l.zero(), l.toString());
                }
                for (long done = 0; done < l.length(); ) {
                    int n = (int) Math.min(g.capacity(), l.length() - done);
                    readFully(guest, g.clear().limit(n), l.start() + done);
                    if (l.data()) {
                        readFully(file, f.clear().limit(n), l.offset() + done);
                        assertEquals(-1, Arrays.mismatch(g.array(), 0, n, f.array(), 0, n),
                                "the data run " + l + " holds the guest bytes qemu reads (at +" + done + ")");
                    } else {
                        for (int i = 0; i < n; i++) {
                            assertEquals(0, g.get(i), "qemu reads zeros in " + l + " (offset " + (done + i) + ")");
                        }
                    }
                    done += n;
                }
                pos += l.length();
            }
        }
        assertEquals(size, pos, "the runs cover the disk: " + map);
        return map;
    }

    private static void readFully(FileChannel ch, ByteBuffer b, long at) throws IOException {
        while (b.hasRemaining()) {
            if (ch.read(b, at + b.position()) < 0) {
                throw new java.io.EOFException("short read at " + (at + b.position()));
            }
        }
    }

    // ------------------------------------------------------------------ writing

    /**
     * Seeded random guest writes and zero writes through {@link
     * DiskImage#write}, mirrored into a byte array: qemu-img check is clean,
     * qemu-img compare finds the image equal to the mirror, diskmorph reads
     * the mirror back, and diskmorph's map of what it wrote equals qemu's
     * (or, where qemu reports no block status, holds what qemu reads);
     * writes across the end of the disk are refused.
     * Over an image the driver created and over every sample. A driver
     * without {@link Feature#WRITE} must refuse and leave the file alone.
     */
    @TestFactory
    Stream<DynamicTest> randomWritesReadBackAndCheckClean() throws IOException {
        if (!features().contains(Feature.WRITE)) {
            return perSample(s -> {
                Path img = copyOf(s);
                byte[] before = Files.readAllBytes(img);
                assertThrows(ImageException.class, () -> {
                    try (DiskImage d = Images.open(img, OpenOptions.forWriting().withFormat(format()))) {
                        d.write(ByteBuffer.wrap(new byte[]{1}), 0);
                    }
                }, "a driver without writes refuses them");
                assertArrayEquals(before, Files.readAllBytes(img), "a refused write leaves the file as it was");
            });
        }
        List<DynamicTest> tests = new ArrayList<>();
        Layout first = layouts().getFirst();
        String created = format() + " " + first.name() + " created by diskmorph";
        tests.add(DynamicTest.dynamicTest(created, () -> named(created, () -> assertWritesLand(dmCreate(first),
                new byte[Math.toIntExact(createdSize(first))], 1))));
        for (Sample s : samples()) {
            tests.add(DynamicTest.dynamicTest(s.name(), () -> named(s.name(), () -> assertWritesLand(copyOf(s),
                    Files.readAllBytes(s.guest()), s.name().hashCode()))));
        }
        return tests.stream();
    }

    private void assertWritesLand(Path image, byte[] mirror, long seed) throws IOException {
        try (DiskImage img = Images.open(image, OpenOptions.forWriting().withFormat(format()))) {
            GuestWrites.scribble(img, mirror, new Random(seed), 80);
            long size = img.virtualSize();
            // the disk does not grow: writes across its end are refused (the mirror shows nothing changed)
            assertThrows(ImageException.class, () -> img.write(ByteBuffer.wrap(new byte[]{1, 2}), size - 1),
                    "a write across the end");
            assertThrows(ImageException.class, () -> img.write(ByteBuffer.wrap(new byte[]{1}), size), "a write at the end");
            assertThrows(ImageException.class, () -> img.writeZeroes(size - 512, 1024, true),
                    "a zero write across the end");
        }
        Oracles.assertCheckClean(image, format());
        Path ref = image.resolveSibling("mirror.raw");
        Files.write(ref, mirror);
        Qemu.Result cmp = Qemu.img("compare", "-f", format(), "-F", "raw", image, ref);
        assertEquals(0, cmp.exitCode(), "qemu-img compare with the mirror: " + cmp.out() + cmp.err());
        Dm.Result dm = Dm.run("compare", "-f", format(), "-F", "raw", image, ref);
        assertEquals(0, dm.exitCode(), "diskmorph compare with the mirror: " + dm.out() + dm.err());
        try (DiskImage img = open(image)) {
            assertGuestBytes(img, mirror, "the written image");
            assertMappingContract(img);
        }
        if (qemuReportsBlockStatus()) {
            assertEquals(Qemu.map(image, format()), Dm.map(image, format()), "map of what diskmorph wrote");
        } else {
            assertMapHoldsWhatQemuReads(image, format(), ref);
        }
    }

    private Path dmCreate(Layout l) throws IOException {
        Path d = Files.createDirectories(dir.resolve("scratch-" + ++scratchCount));
        Path img = d.resolve("created." + format());
        List<Object> args = new ArrayList<>(List.of("create", "-q", "-f", format()));
        if (!l.options().isEmpty()) {
            args.addAll(List.of("-o", l.options()));
        }
        args.addAll(List.of(img, l.size()));
        Dm.run(args.toArray()).ok();
        return img;
    }

    private DiskImage open(Path image) throws IOException {
        return Images.open(image, OpenOptions.forReading().withFormat(format()));
    }

    // ------------------------------------------------------------------ layout builder

    /**
     * For an in-place target, per layout (its size, and the options an
     * in-place conversion takes, {@link LayoutTarget#notInPlace}): the same
     * mapping fed to the builder twice gives the same allocations, the same
     * writes and the same commit record (the converter runs it twice, plan
     * then write, and refuses when they differ). Every write lies in space
     * the builder allocated or in its header zone, never over kept data.
     * Built over real data, the file checks clean in qemu-img and maps
     * every data cluster where it was announced, as diskmorph maps it too.
     */
    @TestFactory
    Stream<DynamicTest> layoutBuilderIsDeterministicAndMapsWhatItWasTold() throws IOException {
        if (!(driver() instanceof LayoutTarget target)) {
            // a skipped test in the report (an assumption in the factory itself would not show)
            return Stream.of(DynamicTest.dynamicTest("not an in-place target", () -> assumeTrue(false,
                    format() + " is not an in-place target")));
        }
        boolean backing = features().contains(Feature.BACKING_FILES);
        return layouts().stream().map(l -> DynamicTest.dynamicTest(format() + " " + l.name(), () -> named(l.name(),
                () -> {
                    // the options a build over existing data takes (not qcow2's preallocation, say)
                    Map<String, String> options = new TreeMap<>(FormatOptions.parseList(l.options()));
                    options.keySet().removeIf(o -> target.notInPlace(o) != null);
                    Built a = build(target, l.size(), options, backing, false, null);
                    Built b = build(target, l.size(), options, backing, false, null);
                    assertEquals(a.log(), b.log(), "allocations and writes");
                    assertEquals(a.commit(), b.commit(), "commit record");
                    assertEquals(a.requiredLength(), b.requiredLength(), "required file length");
                    assertFalse(a.log().isEmpty(), "the builder wrote its metadata through the host space");
                    assertBuiltFileIsWhatItWasTold(target, l, options);
                })));
    }

    private void assertBuiltFileIsWhatItWasTold(LayoutTarget target, Layout l, Map<String, String> options)
            throws IOException {
        Path d = Files.createDirectories(dir.resolve("scratch-" + ++scratchCount));
        Path file = d.resolve("built." + format());
        Built real;
        try (Storage s = FileStorage.create(file, LockMode.NONE)) {
            real = build(target, l.size(), options, false, target.unreferencedSpaceIsLeak(), s);
        }
        Oracles.assertCheckClean(file, format());
        List<Qemu.MapLine> map = verifiedMap(file, format());
        long c = real.clusterSize();
        for (Map.Entry<Long, Long> e : real.data().entrySet()) {
            Qemu.MapLine line = lineAt(map, e.getKey() * c);
            assertTrue(line.data() && line.offset() - line.start() == e.getValue() * c - e.getKey() * c,
                    "guest cluster " + e.getKey() + " announced at host cluster " + e.getValue() + ": " + line);
        }
        for (long z : real.zeros()) {
            assertTrue(lineAt(map, z * c).zero(), "zero cluster " + z + ": " + map);
        }
        Path guest = d.resolve("built.raw");
        Qemu.toRaw(file, format(), guest);
        byte[] g = Files.readAllBytes(guest);
        assertEquals(l.size(), g.length, "virtual size");
        for (long i = 0; i * c < g.length; i++) {
            byte want = real.data().containsKey(i) ? pattern(i) : 0;
            for (int at = (int) (i * c); at < Math.min(g.length, (i + 1) * c); at++) {
                assertEquals(want, g[at], "guest byte " + at);
            }
        }
        assertEquals(map, Dm.map(file, format()), "diskmorph maps the built file as qemu does");
    }

    private static Qemu.MapLine lineAt(List<Qemu.MapLine> map, long guest) {
        return map.stream().filter(l -> l.start() <= guest && guest < l.start() + l.length()).findFirst()
                .orElseThrow(() -> new AssertionError("no map entry at " + guest + ": " + map));
    }

    private static byte pattern(long guestCluster) {
        return (byte) (0x30 + guestCluster % 200);
    }

    private record Built(List<String> log, CommitRecord commit, long requiredLength, long clusterSize,
                         Map<Long, Long> data, Set<Long> zeros) {
    }

    /**
     * Runs the builder over a synthetic mapping of the disk: data clusters
     * at the start, the middle and the last (partial) cluster, in another
     * order on the host than in the guest, one far past the builder's first
     * allocations unless {@code dense} (no free cluster between the data,
     * for targets whose checker counts one as a leak); zero clusters where
     * the target has them; the rest unannounced. With {@code sink}, the data
     * clusters are written there first and the builder's output after.
     */
    private static Built build(LayoutTarget target, long size, Map<String, String> options, boolean backing,
                               boolean dense, Storage sink) throws IOException {
        CreateSpec spec = new CreateSpec(size, options, backing ? "base.raw" : null, backing ? "raw" : null);
        // builders may allocate when made: this one, only asked for its geometry, gets space far out
        LayoutBuilder rules = target.layoutBuilder(spec, LayoutTarget.TargetDefaults.NONE, new KeptDataSpace(null,
                Set.of(), 512, 1L << 30));
        long c = rules.clusterSize();
        long n = Math.ceilDiv(size, c);
        long first = Math.ceilDiv(rules.headerZone(), c);
        List<Long> guests = Stream.of(0L, 1L, 2L, 5L, 9L, n / 2, n / 2 + 1, n - 1).filter(g -> g < n).distinct()
                .sorted().toList();
        List<Long> ranks = new ArrayList<>(java.util.stream.LongStream.range(0, guests.size()).boxed().toList());
        java.util.Collections.shuffle(ranks, new Random(7));
        Map<Long, Long> data = new TreeMap<>();
        for (int i = 0; i < guests.size(); i++) {
            data.put(guests.get(i), first + ranks.get(i) + (!dense && ranks.get(i) == guests.size() - 1 ? 300 : 0));
        }
        Set<Long> zeros = new java.util.TreeSet<>();
        if (rules.supportsZeroClusters()) {
            Stream.of(3L, n / 2 + 2, n - 2).filter(g -> g >= 0 && g < n && !data.containsKey(g)).forEach(zeros::add);
        }
        Set<Long> kept = new java.util.HashSet<>();
        data.values().forEach(h -> kept.add(h * c));
        if (sink != null) {
            for (Map.Entry<Long, Long> e : data.entrySet()) {
                byte[] b = new byte[(int) c];
                Arrays.fill(b, pattern(e.getKey()));
                sink.write(ByteBuffer.wrap(b), e.getValue() * c);
            }
        }
        KeptDataSpace space = new KeptDataSpace(sink, kept, c, rules.headerZone());
        LayoutBuilder builder = target.layoutBuilder(spec, LayoutTarget.TargetDefaults.NONE, space);
        assertEquals(c, builder.clusterSize());
        for (long g = 0; g < n; g++) {
            if (data.containsKey(g)) {
                assertTrue(builder.canKeepDataAt(data.get(g) * c), "can keep aligned data past the header zone");
                builder.addData(g * c, data.get(g) * c);
            } else if (zeros.contains(g)) {
                builder.addZero(g * c);
            }
        }
        CommitRecord commit = builder.finish();
        long required = builder.requiredFileLength();
        if (sink != null) {
            if (sink.size() < required) {
                sink.truncate(required);
            }
            sink.sync();
            commit.apply(sink);
        }
        return new Built(space.log, commit, required, c, data, zeros);
    }

    // ------------------------------------------------------------------ in-place conversion

    /**
     * Every sample converted in place to every in-place target the registry
     * has (the matrix comes from {@link FormatRegistry}, so a new target is
     * tried against every driver without an edit here). A dry run first:
     * it writes nothing and creates no file, and predicts the run. Then the
     * conversion: to its own format with no options it writes nothing;
     * otherwise qemu-img checks the result clean, compares it equal to the
     * untouched sample, sees the target format and the same backing file,
     * finds every data byte that the plan did not move where it was, and
     * diskmorph maps it as qemu does.
     */
    @TestFactory
    Stream<DynamicTest> inPlaceToEveryTargetKeepsTheGuest() {
        List<ImageFormat> targets = FormatRegistry.formats().stream()
                .filter(f -> f.supported() && f instanceof LayoutTarget).toList();
        assertFalse(targets.isEmpty(), "the registry has in-place targets");
        return samples().stream().flatMap(s -> targets.stream().map(t -> {
            String name = s.name() + " -> " + t.name();
            return DynamicTest.dynamicTest(name, () -> named(name, () -> assertConvertsInPlace(s, t.name())));
        }));
    }

    private void assertConvertsInPlace(Sample s, String target) throws IOException {
        Path img = copyOf(s);
        byte[] original = Files.readAllBytes(img);
        List<String> filesBefore = listing(img.getParent());
        List<Qemu.MapLine> before = verifiedMap(img, format());

        Dm.Result tried = Dm.run("convert", "--in-place", "--dry-run", "--output=json", "-f", format(), "-O", target,
                img);
        boolean hasBacking = Qemu.img("info", "--output=json", s.image()).ok().json().has("backing-filename");
        if (hasBacking && tried.exitCode() == ExitCodes.UNSUPPORTED) {
            // a target that cannot name this backing file (a VMDK's parent is a VMDK) refuses the sample: in
            // one line, the dry run and the run alike, with nothing written
            tried.oneLineError();
            Dm.Result run = Dm.run("convert", "--in-place", "-f", format(), "-O", target, img);
            assertEquals(ExitCodes.UNSUPPORTED, run.exitCode(), run.err());
            assertArrayEquals(original, Files.readAllBytes(img), "a refused conversion leaves the file as it was");
            assertEquals(filesBefore, listing(img.getParent()), "a refused conversion leaves no file behind");
            return;
        }
        Dm.Result dry = tried.ok();
        assertArrayEquals(original, Files.readAllBytes(img), "a dry run leaves the file byte-identical");
        assertEquals(filesBefore, listing(img.getParent()), "a dry run creates no file");

        JsonNode plan = Dm.run("convert", "--in-place", "--output=json", "-f", format(), "-O", target, img).ok().json();
        for (String field : new String[]{"nothing-to-change", "kept-bytes", "moved-bytes", "final-length"}) {
            assertEquals(dry.json().get(field), plan.get(field), "the dry run predicted " + field);
        }
        assertEquals(filesBefore, listing(img.getParent()), "no journal or other file left behind");
        if (target.equals(format())) {
            assertTrue(plan.get("nothing-to-change").asBoolean(), "same format, no options: " + plan);
            assertArrayEquals(original, Files.readAllBytes(img), "nothing to change, nothing written");
            return;
        }
        assertFalse(plan.get("nothing-to-change").asBoolean(), plan.toString());
        Oracles.assertCheckClean(img, target);
        Qemu.Result cmp = Qemu.img("compare", "-f", target, "-F", format(), img, s.image());
        assertEquals(0, cmp.exitCode(), "qemu-img compare with the original: " + cmp.out() + cmp.err());
        JsonNode info = Qemu.img("info", "--output=json", img).ok().json();
        assertEquals(target, info.get("format").asText(), "qemu-img sees the target format");
        JsonNode was = Qemu.img("info", "--output=json", s.image()).ok().json();
        assertEquals(was.path("backing-filename").asText(null), info.path("backing-filename").asText(null),
                "the backing file is kept");
        List<Qemu.MapLine> after = verifiedMap(img, target);
        Oracles.assertKeptInPlace(before, after, plan.get("moved-bytes").asLong());
        assertEquals(after, Dm.map(img, target), "diskmorph maps the converted image as qemu does");
    }

    /**
     * In place to raw, from every sample (issue 17): the file becomes the
     * guest's bytes (what qemu-img convert -O raw makes, byte for byte, its
     * length the virtual size), directly when the driver can move its units
     * ({@link io.diskmorph.image.RelocatableImage}), through qcow2 otherwise;
     * only where raw cannot hold the image (a backing file, compressed qcow2
     * clusters) is the run refused, with one line, exit 66, the file
     * byte-identical. Every other refusal fails.
     */
    @TestFactory
    Stream<DynamicTest> inPlaceToRawKeepsTheGuestOrRefuses() {
        return samples().stream().map(s -> DynamicTest.dynamicTest(s.name() + " -> raw",
                () -> named(s.name() + " -> raw", () -> assertConvertsToRaw(s))));
    }

    private void assertConvertsToRaw(Sample s) throws IOException {
        Path img = copyOf(s);
        byte[] original = Files.readAllBytes(img);
        boolean mayRefuse = format().equals("raw") || s.backed() || s.name().endsWith("compressed");
        List<String> filesBefore = listing(img.getParent());
        Dm.Result dry = Dm.run("convert", "--in-place", "--dry-run", "--output=json", "-f", format(), "-O", "raw",
                img);
        assertArrayEquals(original, Files.readAllBytes(img), "a dry run leaves the file byte-identical");
        Dm.Result run = Dm.run("convert", "--in-place", "--output=json", "-f", format(), "-O", "raw", img);
        assertEquals(filesBefore, listing(img.getParent()), "no journal or other file left behind");
        if (format().equals("raw")) {
            assertTrue(run.ok().json().get("nothing-to-change").asBoolean(), run.out());
            return;
        }
        if (run.exitCode() != 0) {
            assertTrue(mayRefuse, s.name() + " -> raw refused: " + run.err());
            assertEquals(ExitCodes.UNSUPPORTED, run.exitCode(), run.err());
            assertEquals(dry.exitCode(), run.exitCode(), "the dry run refuses as the run does");
            run.oneLineError();
            assertArrayEquals(original, Files.readAllBytes(img), "a refusal leaves the file byte-identical");
            return;
        }
        dry.ok();
        assertEquals(dry.json().get("final-length"), run.json().get("final-length"), "the dry run predicted it");
        assertArrayEquals(Files.readAllBytes(s.guest()), Files.readAllBytes(img), "the file is the guest's bytes");
        assertEquals("raw", Qemu.img("info", "--output=json", img).ok().json().get("format").asText());
    }

    private static List<String> listing(Path d) throws IOException {
        try (var files = Files.list(d)) {
            return files.map(p -> p.getFileName().toString()).sorted().toList();
        }
    }
}
