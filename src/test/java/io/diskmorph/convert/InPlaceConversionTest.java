package io.diskmorph.convert;

import com.fasterxml.jackson.databind.JsonNode;
import io.diskmorph.image.ExitCodes;
import io.diskmorph.testing.Dm;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

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

    /** A source image recipe: format, size, create options, qemu-io commands. */
    record Source(String name, String format, String size, String options, List<String> io) {
        @Override
        public String toString() {
            return name;
        }
    }

    static final List<String> SCATTERED = List.of("write -P 0x11 0 64k", "write -P 0x22 100k 8k",
            "write -P 0x33 1M 200k", "write -P 0x44 5M 3k", "write -P 0x55 7340000 4k");
    static final List<String> WITH_ZEROS = concat(SCATTERED, List.of("write -z 2M 128k", "write -z 6M 64k"));

    static List<String> concat(List<String> a, List<String> b) {
        List<String> l = new ArrayList<>(a);
        l.addAll(b);
        return l;
    }

    static Stream<Arguments> pairs() {
        return Stream.of(
                Arguments.of(new Source("raw 8M", "raw", "8M", "", SCATTERED), "qed", ""),
                Arguments.of(new Source("raw 7.5M+512", "raw", "7864832", "", SCATTERED), "qed", "cluster_size=4k"),
                Arguments.of(new Source("raw 8M", "raw", "8M", "", SCATTERED), "qed", "cluster_size=1M,table_size=2"));
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
        assertEquals(target, Qemu.img("info", "--output=json", img).ok().json().get("format").asText());

        assertKeptInPlace(before, Qemu.map(img, target), plan.get("moved-bytes").asLong());
        System.out.printf("in place %s -> %s %s: kept %d, moved %d, metadata %d, extra %d bytes%n", src, target,
                options, plan.get("kept-bytes").asLong(), plan.get("moved-bytes").asLong(),
                plan.get("metadata-bytes").asLong(), plan.get("extra-space").asLong());
    }

    /**
     * Every guest byte that had data at a host offset before is at the same
     * offset after, except for at most {@code moved} bytes.
     */
    static void assertKeptInPlace(List<Qemu.MapLine> before, List<Qemu.MapLine> after, long moved) {
        long displaced = 0;
        for (Qemu.MapLine b : before) {
            if (!b.data() || b.offset() < 0 || b.depth() != 0) {
                continue;
            }
            for (Qemu.MapLine a : after) {
                long s = Math.max(a.start(), b.start());
                long e = Math.min(a.start() + a.length(), b.start() + b.length());
                if (s >= e) {
                    continue;
                }
                boolean same = a.offset() >= 0 && a.offset() - a.start() == b.offset() - b.start();
                if (!same) {
                    displaced += e - s;
                }
            }
        }
        assertTrue(displaced <= moved, "data displaced: " + displaced + " bytes, but the plan moved only " + moved);
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
        r = Dm.run("convert", "--in-place", "-f", "raw", "-O", "raw", img);
        assertEquals(ExitCodes.UNSUPPORTED, r.exitCode());
        r.oneLineError();
        r = Dm.run("convert", "--in-place", "-f", "raw", "-O", "qed", "-o", "cluster_size=3k", img);
        assertNotEquals(0, r.exitCode());
        r.oneLineError();
        assertArrayEquals(original, Files.readAllBytes(img));
        assertEquals(List.of(img.getFileName().toString()), listNames(), "no sidecar left behind");
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
        Dm.run("recover", img).ok();
        assertEquals(0, Qemu.img("compare", "-f", "raw", "-F", "raw", img, reference).exitCode());
        assertEquals(List.of(img.getFileName().toString(), "reference.raw"), listNames());
        assertTrue(Dm.run("recover", img).ok().out().contains("nothing to do"));
    }

    private List<String> listNames() throws IOException {
        try (var s = Files.list(dir)) {
            return s.map(p -> p.getFileName().toString()).filter(n -> !n.startsWith("nbd")).sorted().toList();
        }
    }

    Path make(Source s) {
        Path p = dir.resolve("img." + s.format());
        if (s.options().isEmpty()) {
            Qemu.create(p, s.format(), s.size());
        } else {
            Qemu.create(p, s.format(), s.size(), s.options());
        }
        Qemu.io(p, s.format(), s.io().toArray(String[]::new));
        return p;
    }
}
