package io.diskmorph.format.qed;

import io.diskmorph.image.CreateSpec;
import io.diskmorph.image.ExitCodes;
import io.diskmorph.image.HostSpace;
import io.diskmorph.image.InvalidRequestException;
import io.diskmorph.image.LayoutBuilder;
import io.diskmorph.image.LayoutTarget.TargetDefaults;
import io.diskmorph.testing.Dm;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import java.util.TreeSet;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The QED layout builder against its javadoc contract, and create through it, with qemu-img as the judge. */
class QedLayoutBuilderTest {
    @TempDir
    Path dir;

    /** An empty mapping laid out by the builder is byte for byte what qemu-img create writes. */
    @ParameterizedTest(name = "[{index}] {0}")
    @CsvSource(delimiter = ';', value = {
            "''", "cluster_size=4096,table_size=2", "cluster_size=4096,table_size=16",
            "cluster_size=65536,table_size=2", "table_size=16", "cluster_size=1M,table_size=2",
            "cluster_size=1M,table_size=16", "cluster_size=2M,table_size=8"})
    void createIsByteIdenticalToQemu(String options) throws Exception {
        Path ours = dir.resolve("ours.qed");
        Path theirs = dir.resolve("theirs.qed");
        List<String> args = new ArrayList<>(List.of("create", "-q", "-f", "qed"));
        if (!options.isEmpty()) {
            args.addAll(List.of("-o", options));
        }
        Dm.run((Object[]) concat(args, ours.toString(), "100M")).ok();
        args.addFirst("qemu-img");
        Qemu.run(concat(args, theirs.toString(), "100M")).ok();
        assertEquals(QedFiles.digest(theirs), QedFiles.digest(ours));
        assertEquals(0, Qemu.check(ours, "qed").exitCode());
    }

    @Test
    void createWithBackingFilesMatchesQemu() throws Exception {
        Qemu.create(dir.resolve("b.raw"), "raw", "5M");
        Qemu.create(dir.resolve("b.qed"), "qed", "5M");
        for (String fmt : new String[]{"raw", "qed"}) {
            Path ours = dir.resolve("o-" + fmt + ".qed");
            Path theirs = dir.resolve("t-" + fmt + ".qed");
            Dm.run("create", "-q", "-f", "qed", "-b", "b." + fmt, "-F", fmt, ours).ok();
            Qemu.img("create", "-q", "-f", "qed", "-b", "b." + fmt, "-F", fmt, theirs).ok();
            assertEquals(QedFiles.digest(theirs), QedFiles.digest(ours), fmt);
            assertEquals(Qemu.img("info", "--output=json", theirs).ok().json().get("backing-filename-format"),
                    Dm.run("info", "--output=json", ours).ok().json().get("backing-filename-format"));
        }
    }

    /** A backing name longer than one cluster gets more header clusters; qemu reads it back. */
    @Test
    void longBackingNamesGrowTheHeaderZone() throws Exception {
        String name = "./".repeat(2016) + "b.raw"; // 4037 bytes: the header needs 64 + 4037 > 4096
        Qemu.create(dir.resolve("b.raw"), "raw", "1M");
        Path f = dir.resolve("long.qed");
        Dm.run("create", "-q", "-f", "qed", "-o", "cluster_size=4096,table_size=2", "-b", name, "-F", "raw",
                f, "1M").ok();
        assertEquals(2, QedFiles.layout(f).headerSize());
        assertEquals(name, Qemu.img("info", "--output=json", f).ok().json().get("backing-filename").asText());
        Qemu.Result check = Qemu.check(f, "qed");
        assertEquals(0, check.exitCode(), check.out());
    }

    @Test
    void invalidOptionsAreRefusedBeforeAnythingIsWritten() {
        String[][] bad = {
                {"table_size=1"}, {"table_size=3"}, {"table_size=32"}, {"cluster_size=2048"},
                {"cluster_size=12288"}, {"cluster_size=16M"}, {"preallocation=full"}, {"nonsense=1"}};
        for (String[] o : bad) {
            Path f = dir.resolve("bad.qed");
            Dm.Result r = Dm.run("create", "-f", "qed", "-o", o[0], f, "1G");
            assertEquals(ExitCodes.USAGE, r.exitCode(), o[0]);
            r.oneLineError();
            assertFalse(Files.exists(f), o[0] + " leaves no file");
        }
        // too large for the options (qemu: 64 TiB with the defaults)
        Dm.Result r = Dm.run("create", "-f", "qed", dir.resolve("huge.qed"), "65T");
        assertEquals(ExitCodes.USAGE, r.exitCode());
        assertEquals(1, Qemu.img("create", "-f", "qed", dir.resolve("qhuge.qed"), "65T").exitCode());
    }

    /**
     * qemu 7.2 cannot open a table_size=1 image whatever the layout: its
     * table offset check tests {@code offset + (table_size - 1) * C <= offset}.
     */
    @Test
    void qemuCannotOpenTableSizeOneWhichIsWhyWeDoNotCreateIt() {
        Path f = dir.resolve("t1.qed");
        Qemu.img("create", "-q", "-f", "qed", "-o", "table_size=1,cluster_size=4096", f, "1M").ok();
        Qemu.Result r = Qemu.img("info", f);
        assertEquals(1, r.exitCode());
        assertTrue(r.err().contains("QED table offset is invalid"), r.err());
    }

    /**
     * Data clusters scattered over the file at host offsets of the caller's
     * choosing, zero clusters and gaps, over a raw backing file: qemu-img
     * check is clean and qemu-img map puts every announced cluster where it
     * was announced.
     */
    @Test
    void scatteredMappingOverATempFile() throws Exception {
        long c = 65536;
        long size = (3L << 30) + 512; // four L2 tables of 1 GiB
        Path base = dir.resolve("base.raw");
        Qemu.create(base, "raw", String.valueOf(size));
        Qemu.io(base, "raw", "write -P 0xbb 0 64M");
        Random rnd = new Random(7);
        TreeSet<Long> guest = new TreeSet<>();
        while (guest.size() < 60) {
            guest.add(rnd.nextLong(size / c + 1) * c);
        }
        guest.add(0L);
        guest.add(size - size % c); // the last, partial cluster
        List<Long> clusters = new ArrayList<>(guest);
        List<Long> zeros = new ArrayList<>();
        for (int i = 0; i < 12; i++) {
            zeros.add(clusters.remove(rnd.nextInt(clusters.size() - 2) + 1));
        }
        List<Long> hosts = new ArrayList<>();
        for (long i = 1; i <= clusters.size(); i++) {
            hosts.add(i * c);
        }
        Collections.shuffle(hosts, rnd);
        Path f = dir.resolve("built.qed");
        TreeMap<Long, Long> dataAt = new TreeMap<>();
        try (FileChannel ch = FileChannel.open(f, StandardOpenOption.CREATE_NEW, StandardOpenOption.READ,
                StandardOpenOption.WRITE)) {
            for (int i = 0; i < clusters.size(); i++) {
                dataAt.put(clusters.get(i), hosts.get(i));
                writeFully(ch, stamp(clusters.get(i), (int) c), hosts.get(i));
            }
            FileSpace space = new FileSpace(ch, (clusters.size() + 1) * c);
            LayoutBuilder b = new QedFormat().layoutBuilder(new CreateSpec(size, Map.of("table_size", "2"),
                    "base.raw", "raw"), TargetDefaults.NONE, space);
            assertEquals(c, b.headerZone());
            TreeMap<Long, Long> all = new TreeMap<>(dataAt);
            zeros.forEach(z -> all.put(z, -1L));
            for (Map.Entry<Long, Long> e : all.entrySet()) {
                if (e.getValue() < 0) {
                    b.addZero(e.getKey());
                } else {
                    assertTrue(b.canKeepDataAt(e.getValue()));
                    b.addData(e.getKey(), e.getValue());
                }
            }
            io.diskmorph.image.CommitRecord commit = b.finish();
            for (var w : commit.writes()) {
                assertTrue(w.end() <= b.headerZone());
                writeFully(ch, ByteBuffer.wrap(w.bytes()), w.offset());
            }
            assertEquals(space.next, b.requiredFileLength(), "tables were allocated last here");
            if (ch.size() < b.requiredFileLength()) {
                ch.truncate(b.requiredFileLength());
                writeFully(ch, ByteBuffer.allocate(1), b.requiredFileLength() - 1);
            }
        }
        Qemu.Result check = Qemu.check(f, "qed");
        assertEquals(0, check.exitCode(), check.out() + check.err());
        assertFalse(check.json().has("leaks"));
        assertEquals(dataAt.size(), check.json().get("allocated-clusters").asLong());

        Map<Long, Long> mapped = new HashMap<>();
        List<Long> zeroMapped = new ArrayList<>();
        for (Qemu.MapLine m : Qemu.map(f, "qed")) {
            for (long g = m.start(); g < m.start() + m.length(); g += c) {
                if (m.depth() == 0 && m.data()) {
                    mapped.put(g - g % c, m.offset() + (g - m.start()) - (g - m.start()) % c);
                } else if (m.depth() == 0 && m.zero() && m.present()) {
                    zeroMapped.add(g);
                }
            }
        }
        assertEquals(dataAt, new TreeMap<>(mapped), "every data cluster at its announced host offset");
        assertEquals(new TreeSet<>(zeros), new TreeSet<>(zeroMapped));
        QedFiles.assertSameMap(f, "qed");
        Path raw = dir.resolve("built.raw");
        Qemu.toRaw(f, "qed", raw);
        for (long g : dataAt.keySet()) {
            int n = (int) Math.min(c, size - g);
            assertArrayEquals(Arrays.copyOf(stamp(g, (int) c).array(), n), QedFiles.read(raw, g, n).array());
        }
        for (long z : zeros) {
            assertTrue(QedFiles.isZero(QedFiles.read(raw, z, (int) c)), "zero cluster over the backing file");
        }
        QedFiles.assertSameGuestBytes(f, "qed", raw);
    }

    private static ByteBuffer stamp(long guest, int c) {
        ByteBuffer b = ByteBuffer.allocate(c);
        while (b.hasRemaining()) {
            b.putLong(guest + b.position() + 1);
        }
        return b.flip();
    }

    private static void writeFully(FileChannel ch, ByteBuffer b, long pos) throws IOException {
        while (b.hasRemaining()) {
            ch.write(b, pos + b.position());
        }
    }

    /** Host space for the test: bump allocation past the kept data, writes straight to the file. */
    private static final class FileSpace implements HostSpace {
        private final FileChannel ch;
        long next;

        FileSpace(FileChannel ch, long start) {
            this.ch = ch;
            this.next = start;
        }

        @Override
        public long allocate(long length, long alignment) {
            long at = (next + alignment - 1) & -alignment;
            next = at + length;
            return at;
        }

        @Override
        public void write(long hostOffset, ByteBuffer data) throws IOException {
            writeFully(ch, data, hostOffset);
        }
    }

    @Test
    void contractValuesAndRefusals() throws Exception {
        long[] next = {0};
        HostSpace space = new HostSpace() {
            @Override
            public long allocate(long length, long alignment) {
                long at = (next[0] + alignment - 1) & -alignment;
                next[0] = at + length;
                return at;
            }

            @Override
            public void write(long hostOffset, ByteBuffer data) {
            }
        };
        QedFormat fmt = new QedFormat();
        assertTrue(fmt.unreferencedSpaceIsLeak());
        LayoutBuilder b = fmt.layoutBuilder(new CreateSpec(1L << 30, Map.of(), null, null),
                new TargetDefaults(4096), space);
        assertEquals(4096, b.clusterSize(), "the source's cluster size is the default");
        assertTrue(b.supportsZeroClusters());
        assertEquals(4096, b.headerZone());
        assertFalse(b.canKeepDataAt(0));
        assertFalse(b.canKeepDataAt(4096 + 512));
        assertTrue(b.canKeepDataAt(4096));
        next[0] = 4096;
        b.addData(8192, 1L << 40); // data far past the tables: the file must reach it
        assertThrows(InvalidRequestException.class, () -> b.addData(8192, 1L << 41), "not increasing");
        assertThrows(InvalidRequestException.class, () -> b.addData(16384 + 512, 1L << 41), "misaligned guest");
        assertThrows(InvalidRequestException.class, () -> b.addData(1L << 30, 1L << 41), "past the disk");
        assertThrows(InvalidRequestException.class, () -> b.addData(16384, 4096 + 512), "misaligned host");
        b.finish();
        assertEquals((1L << 40) + 4096, b.requiredFileLength());

        assertEquals(65536, fmt.layoutBuilder(new CreateSpec(1L << 30, Map.of(), null, null),
                new TargetDefaults(512), space).clusterSize(), "qcow2-sized 512 B clusters are not QED's");
        assertEquals(1 << 20, fmt.layoutBuilder(new CreateSpec(1L << 30, Map.of("cluster_size", "1M"), null, null),
                new TargetDefaults(4096), space).clusterSize(), "the user's option wins");
    }

    /** Memory does not grow with the disk: 4 TiB with 2048 L2 tables builds in a 24 MiB heap. */
    @Test
    void fourTebibyteDiskBuildsWithASmallHeap() throws Exception {
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        Qemu.Result r = Qemu.run(java, "-Xmx24m", "-cp", System.getProperty("java.class.path"),
                QedBuilderHeapProbe.class.getName());
        assertEquals(0, r.exitCode(), r.err());
        String[] words = r.out().strip().split(" ");
        assertEquals("ok", words[0]);
        assertEquals(1 + 2048, Long.parseLong(words[1]), "L1 plus one L2 table per 2 GiB");
        assertEquals((1 + 2048) * 262144L, Long.parseLong(words[2]), "every table byte written");
    }

    private static String[] concat(List<String> a, String... more) {
        List<String> out = new ArrayList<>(a);
        out.addAll(List.of(more));
        return out.toArray(String[]::new);
    }
}
