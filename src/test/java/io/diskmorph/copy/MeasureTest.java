package io.diskmorph.copy;

import com.fasterxml.jackson.databind.JsonNode;
import io.diskmorph.image.ExitCodes;
import io.diskmorph.testing.Dm;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/**
 * measure against qemu-img measure (same JSON, and the same human lines),
 * for sources of every format and a range of qcow2 options; QED (which
 * qemu-img cannot measure) against the files convert really writes; and
 * --in-place against the in-place dry run.
 */
class MeasureTest {
    @TempDir
    Path dir;

    private Path source(String format, String... extra) {
        Path p = dir.resolve("m." + format);
        Qemu.create(p, format, "64M");
        List<String> io = new ArrayList<>(List.of("write -P 1 0 3M", "write -P 2 10M 100k", "write -z 20M 1M",
                "write -P 3 33M 4k", "write -P 0 40M 64k", "write -P 4 63M 1M"));
        io.addAll(List.of(extra));
        Qemu.io(p, format, io.toArray(String[]::new));
        return p;
    }

    @Test
    void agreesWithQemuForEverySourceAndOption() throws Exception {
        List<Path> sources = List.of(source("raw"), source("qcow2"), source("qed"));
        String[] options = {"", "cluster_size=4k", "cluster_size=2M", "refcount_bits=1", "refcount_bits=64",
                "extended_l2=on", "compat=0.10", "cluster_size=512,refcount_bits=8",
                "backing_file=b.qcow2,backing_fmt=qcow2", "preallocation=metadata"};
        for (Path src : sources) {
            for (String o : options) {
                assertSame(o.isEmpty() ? List.of("-O", "qcow2", src) : List.of("-O", "qcow2", "-o", o, src));
            }
            assertSame(List.of("-O", "raw", src));
        }
    }

    @Test
    void emptyDisksAndHumanOutput() throws Exception {
        for (String size : new String[]{"0", "1", "4G", "1T", "8E"}) {
            for (String o : new String[]{"cluster_size=64k", "cluster_size=2M,refcount_bits=1"}) {
                if (size.equals("8E")) {
                    Qemu.Result q = Qemu.img("measure", "-O", "qcow2", "-o", o, "--size", size);
                    Dm.Result d = Dm.run("measure", "-O", "qcow2", "-o", o, "--size", size);
                    assertEquals(q.exitCode() != 0, d.exitCode() != 0, "both refuse or both accept 8E");
                    continue;
                }
                assertSame(List.of("-O", "qcow2", "-o", o, "--size", size));
            }
            if (!size.equals("8E")) {
                assertSame(List.of("-O", "raw", "--size", size));
            }
        }
        Path src = source("qcow2");
        Qemu.Result q = Qemu.img("measure", "-O", "qcow2", src).ok();
        Dm.Result d = Dm.run("measure", "-O", "qcow2", src).ok();
        assertEquals(q.out(), d.out(), "the human report is qemu-img's, line for line");
    }

    @Test
    void measuresACompressedSourceAndAChain() throws Exception {
        Path plain = source("qcow2");
        Path c = dir.resolve("c.qcow2");
        Qemu.img("convert", "-c", "-O", "qcow2", plain, c).ok();
        assertSame(List.of("-O", "qcow2", c));
        Path top = dir.resolve("top.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", "-b", plain, "-F", "qcow2", top).ok();
        Qemu.io(top, "qcow2", "write -P 9 30M 2M", "write -z 0 1M");
        assertSame(List.of("-O", "qcow2", top));
        assertSame(List.of("-O", "qcow2", "-o", "cluster_size=4k", top));
    }

    @Test
    void qedFiguresAreWhatConvertWrites() throws Exception {
        for (String fmt : new String[]{"raw", "qcow2", "qed"}) {
            Path src = source(fmt);
            for (String o : new String[]{"", "cluster_size=4k,table_size=2", "cluster_size=1M,table_size=16"}) {
                Path out = dir.resolve("out-" + fmt + o.hashCode() + ".qed");
                List<Object> args = new ArrayList<>(List.of("-O", "qed"));
                if (!o.isEmpty()) {
                    args.addAll(List.of("-o", o));
                }
                Dm.run(concat("convert", args, src, out)).ok();
                JsonNode m = Dm.run(concat("measure", args, "--output=json", src)).ok().json();
                // zero detection may leave out clusters the mapping calls data (the 64k of zeros at 40M)
                long actual = Files.size(out);
                long required = m.get("required").asLong();
                assertTrue(actual <= required && required - actual <= 64 * 1024 + (1 << 20),
                        fmt + " " + o + ": measured " + required + ", written " + actual);
                Path full = dir.resolve("full-" + fmt + o.hashCode() + ".qed");
                Dm.run(concat("convert", args, "-S", "0", src, full)).ok();
                assertEquals(Files.size(full), m.get("fully-allocated").asLong(), "fully allocated: " + o);
            }
        }
        assertEquals(ExitCodes.USAGE, Dm.run("measure", "-O", "qed", "-o", "table_size=3", "--size", "1G")
                .exitCode());
    }

    @Test
    void inPlaceReportsTheDryRunPlan() throws Exception {
        Path src = source("qed");
        JsonNode plan = Dm.run("convert", "--in-place", "--dry-run", "--output=json", "-O", "qcow2", src).ok().json();
        JsonNode m = Dm.run("measure", "--in-place", "--output=json", "-O", "qcow2", src).ok().json();
        assertEquals(plan.get("extra-space"), m.at("/in-place/extra-space"));
        assertEquals(plan.get("moved-bytes"), m.at("/in-place/moved-bytes"));
        assertEquals(plan.get("final-length"), m.at("/in-place/final-length"));
        JsonNode q = Qemu.img("measure", "--output=json", "-O", "qcow2", src).ok().json();
        assertEquals(q.get("required"), m.get("required"));
        String human = Dm.run("measure", "--in-place", "-O", "qcow2", src).ok().out();
        assertTrue(human.contains("in-place extra space: " + plan.get("extra-space").asLong()), human);
        assertTrue(human.contains("in-place moved bytes: " + plan.get("moved-bytes").asLong()), human);
    }

    /**
     * Into VMDK (qemu-img measures no VMDK, so neither does diskmorph without
     * --in-place): --in-place gives the dry run's figures alone; from a VMDK
     * to raw, the raw sizes and the roll-forward's figures.
     */
    @Test
    void inPlaceIntoAndOutOfVmdkReportsTheDryRunPlan() throws Exception {
        String[] fields = {"extra-space", "moved-bytes", "final-length", "kept-bytes", "metadata-bytes"};
        for (String[] pair : new String[][]{{"qcow2", "vmdk"}, {"raw", "vmdk"}, {"vmdk", "raw"}}) {
            Path src = source(pair[0]);
            byte[] before = Files.readAllBytes(src);
            JsonNode plan = Dm.run("convert", "--in-place", "--dry-run", "--output=json", "-O", pair[1], src).ok()
                    .json();
            JsonNode m = Dm.run("measure", "--in-place", "--output=json", "-O", pair[1], src).ok().json();
            for (String f : fields) {
                assertEquals(plan.get(f), m.at("/in-place/" + f), pair[0] + " -> " + pair[1] + ": " + f);
            }
            assertTrue(plan.get("extra-space").asLong() > 0 && plan.get("final-length").asLong() > 0, plan.toString());
            String human = Dm.run("measure", "--in-place", "-O", pair[1], src).ok().out();
            assertTrue(human.contains("in-place extra space: " + plan.get("extra-space").asLong()), human);
            assertTrue(human.contains("in-place final length: " + plan.get("final-length").asLong()), human);
            if (pair[1].equals("vmdk")) {
                assertFalse(m.has("required"), "no size qemu-img would not give: " + m);
                assertFalse(human.contains("required size"), human);
                assertNotEquals(0, Qemu.img("measure", "-O", "vmdk", src).exitCode(), "qemu-img measures no VMDK");
                Dm.Result r = Dm.run("measure", "-O", "vmdk", src);
                assertEquals(ExitCodes.UNSUPPORTED, r.exitCode(), r.err());
                assertTrue(r.oneLineError().contains("does not support size measurement"), r.err());
            } else {
                JsonNode q = Qemu.img("measure", "--output=json", "-O", pair[1], src).ok().json();
                assertEquals(q.get("required"), m.get("required"));
                assertEquals(q.get("fully-allocated"), m.get("fully-allocated"));
                assertTrue(plan.get("moved-bytes").asLong() > 0, "grains move to their guest offsets: " + plan);
            }
            assertArrayEquals(before, Files.readAllBytes(src), "measure writes nothing");
        }
    }

    @Test
    void refusals() throws Exception {
        Path src = source("qcow2");
        assertEquals(ExitCodes.USAGE, Dm.run("measure", "-O", "qcow2").exitCode());
        assertEquals(ExitCodes.USAGE, Dm.run("measure", "-O", "qcow2", "--size", "1G", src).exitCode());
        assertEquals(ExitCodes.USAGE, Dm.run("measure", "-O", "qcow2", "--in-place", "--size", "1G").exitCode());
        assertEquals(ExitCodes.USAGE, Dm.run("measure", "-O", "qcow2", "-o", "bogus=1", src).exitCode());
        assertEquals(ExitCodes.USAGE, Dm.run("measure", "-O", "nosuch", src).exitCode());
        Dm.Result r = Dm.run("measure", "-O", "qcow2", dir.resolve("missing"));
        assertNotEquals(0, r.exitCode());
        r.oneLineError();
    }

    /** diskmorph measure --output=json gives exactly qemu-img measure's JSON. */
    private static void assertSame(List<Object> args) {
        Qemu.Result q = Qemu.img(concat("measure", args, "--output=json"));
        assertEquals(0, q.exitCode(), "qemu-img measure " + args + ": " + q.err());
        Dm.Result d = Dm.run(concat("measure", args, "--output=json")).ok();
        assertEquals(q.json(), d.json(), "measure " + args);
    }

    private static Object[] concat(String first, List<?> middle, Object... rest) {
        List<Object> l = new ArrayList<>();
        l.add(first);
        l.addAll(middle);
        l.addAll(List.of(rest));
        return l.toArray();
    }
}
