package io.diskmorph.convert;

import com.fasterxml.jackson.databind.JsonNode;
import io.diskmorph.image.ExitCodes;
import io.diskmorph.testing.Dm;
import io.diskmorph.testing.Processes;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.*;

/**
 * -p and --progress=json on check (with and without -r), measure, recover
 * and rollback: the JSON lines parse, each phase's bytes never go back and
 * a phase with a byte total ends at it, the phase names are the documented
 * ones, plain lines come every 10 %, the bar is drawn on a terminal, a TiB
 * sparse image prints a handful of lines, and stdout, the exit code and the
 * files are what they are without progress.
 */
class CommandProgressTest {
    /** The phase names the README documents for these commands. */
    private static final Set<String> CHECK_PHASES = Set.of("check", "tables", "refcounts", "grains", "repair");
    private static final Set<String> RECOVERY_PHASES = Set.of("journal", "switch", "restore", "complete", "sync",
            "cleanup");

    @TempDir
    Path dir;

    /** One line of --progress=json. */
    record Line(String phase, long done, long total) {
    }

    /**
     * Parses the stderr lines as JSON (check's own messages, which qemu-img
     * prints on stderr, follow them: they are skipped) and checks the
     * contract: within each run of one phase, done never decreases, never
     * passes the total, the total changes only from the announcement's 0
     * (the in-place planner announces its phases before it knows their
     * size), and a phase with a total ends at it. Returns the lines.
     */
    static List<Line> progressLines(String err) throws Exception {
        List<Line> lines = new ArrayList<>();
        List<String> all = err.lines().toList();
        int json = 0;
        while (json < all.size() && all.get(json).startsWith("{")) {
            json++;
        }
        for (String l : all.subList(json, all.size())) {
            assertFalse(l.startsWith("{"), "progress after check's messages: " + err);
        }
        for (String l : all.subList(0, json)) {
            JsonNode j = Qemu.JSON.readTree(l); // every line parses on its own
            assertEquals(3, j.size(), l);
            lines.add(new Line(j.get("phase").asText(), j.get("bytes-done").asLong(), j.get("bytes-total").asLong()));
        }
        for (int i = 0; i < lines.size(); i++) {
            Line cur = lines.get(i);
            assertTrue(cur.done() >= 0 && (cur.total() == 0 ? cur.done() == 0 : cur.done() <= cur.total()),
                    "out of range: " + cur);
            boolean lastOfRun = i + 1 == lines.size() || !lines.get(i + 1).phase().equals(cur.phase());
            if (i > 0 && lines.get(i - 1).phase().equals(cur.phase())) {
                Line prev = lines.get(i - 1);
                assertTrue(cur.done() >= prev.done(), "went back: " + prev + " -> " + cur);
                if (prev.total() != 0) {
                    assertEquals(prev.total(), cur.total(), "the total changed within " + cur.phase());
                }
            }
            if (lastOfRun && cur.total() > 0) {
                assertEquals(cur.total(), cur.done(), "phase " + cur.phase() + " did not reach its total: " + err);
            }
        }
        return lines;
    }

    /** The phases in order, each run of one phase once. */
    static List<String> phases(List<Line> lines) {
        List<String> p = new ArrayList<>();
        for (Line l : lines) {
            if (p.isEmpty() || !p.getLast().equals(l.phase())) {
                p.add(l.phase());
            }
        }
        return p;
    }

    private static long total(List<Line> lines, String phase) {
        return lines.stream().filter(l -> l.phase().equals(phase)).mapToLong(Line::total).max().orElse(-1);
    }

    private static long virtualSize(Path img) throws Exception {
        return Qemu.JSON.readTree(Qemu.img("info", "--output=json", img).ok().out()).get("virtual-size").asLong();
    }

    private Path image(String name, String format, String size, String... writes) {
        Path img = dir.resolve(name);
        Qemu.create(img, format, size);
        if (writes.length > 0) {
            Qemu.io(img, format, writes);
        }
        return img;
    }

    @ParameterizedTest
    @CsvSource({"qcow2, tables refcounts", "qed, tables", "qcow, tables", "vdi, tables", "vpc, tables",
            "vhdx, tables", "vmdk, tables grains", "parallels, tables"})
    void checkReportsThePhasesOfEachFormatUpToTheirTotals(String format, String expected) throws Exception {
        Path img = image("c." + format, format, "64M", "write -P 7 0 1M", "write -P 9 40M 2M");
        long size = virtualSize(img);
        for (String output : new String[]{"human", "json"}) {
            Dm.Result plain = Dm.run("check", "--output=" + output, img);
            Dm.Result withProgress = Dm.run("check", "--progress=json", "--output=" + output, img);
            assertEquals(plain.exitCode(), withProgress.exitCode(), withProgress.err());
            assertEquals(plain.out(), withProgress.out(), "stdout changed with progress on");
            List<Line> lines = progressLines(withProgress.err());
            assertEquals(List.of(expected.split(" ")), phases(lines), withProgress.err());
            assertTrue(CHECK_PHASES.containsAll(phases(lines)));
            if (format.equals("qcow2")) { // the L1 entries' coverage: the disk rounded up to an L2 table's
                assertTrue(total(lines, "tables") >= size, withProgress.err());
                assertEquals(Files.size(img), total(lines, "refcounts"), "refcounts: every host cluster");
            } else {
                assertEquals(size, total(lines, "tables"), withProgress.err());
            }
        }
        assertEquals(0, Dm.run("check", "-q", "-p", img).err().length(), "-q silences -p");
    }

    @Test
    void aFormatWithoutChecksStillExits63() throws Exception {
        Path img = image("r.raw", "raw", "8M");
        Dm.Result plain = Dm.run("check", img);
        Dm.Result withProgress = Dm.run("check", "--progress=json", img);
        assertEquals(ExitCodes.CHECK_UNSUPPORTED, plain.exitCode());
        assertEquals(plain.exitCode(), withProgress.exitCode());
        assertEquals(plain.out(), withProgress.out());
        List<String> err = withProgress.err().lines().toList();
        assertEquals("{\"phase\": \"check\", \"bytes-done\": 0, \"bytes-total\": 8388608}", err.getFirst());
        assertEquals(plain.err().strip(), err.getLast());
    }

    /** A leak (bytes past the last cluster) repaired with and without progress: same report, same file. */
    @Test
    void repairReportsItsPhaseAndWritesWhatItWritesWithoutProgress() throws Exception {
        Path a = image("a.parallels", "parallels", "64M", "write -P 7 0 1M");
        Files.write(a, new byte[3 << 20], StandardOpenOption.APPEND);
        Path b = Files.copy(a, dir.resolve("b.parallels"));
        Dm.Result checked = Dm.run("check", a);
        assertEquals(ExitCodes.CHECK_LEAKS, checked.exitCode(), checked.out() + checked.err());
        assertEquals(checked.exitCode(), Dm.run("check", "--progress=json", a).exitCode());

        Dm.Result plain = Dm.run("check", "-r", "leaks", a);
        Dm.Result withProgress = Dm.run("check", "-r", "leaks", "--progress=json", b);
        assertEquals(plain.exitCode(), withProgress.exitCode());
        assertEquals(plain.out(), withProgress.out());
        assertTrue(plain.out().contains("leaked clusters"), plain.out());
        assertArrayEquals(Files.readAllBytes(a), Files.readAllBytes(b), "the repair wrote something else");
        List<String> phases = phases(progressLines(withProgress.err()));
        assertEquals(List.of("tables", "repair", "tables"), phases, "the second pass after the repair");
        assertEquals(0, Qemu.check(b, "parallels").exitCode());

        // qcow2: -r all on a clean image walks, announces the repair, and finds nothing to do again
        Path q = image("q.qcow2", "qcow2", "64M", "write -P 7 0 1M");
        Dm.Result repaired = Dm.run("check", "-r", "all", "--progress=json", q);
        assertEquals(0, repaired.exitCode(), repaired.err());
        assertEquals(List.of("tables", "refcounts", "repair"), phases(progressLines(repaired.err())));
        assertEquals(Dm.run("check", "-r", "all", q).out(), repaired.out());

        // a qcow2 leak (a cluster appended with refcount 1): the repair, then the second pass's phases
        Path leaky = image("leak.qcow2", "qcow2", "64M", "write -P 7 0 1M");
        plantLeak(leaky);
        Path leaky2 = Files.copy(leaky, dir.resolve("leak2.qcow2"));
        assertEquals(ExitCodes.CHECK_LEAKS, Dm.run("check", leaky).exitCode());
        Dm.Result fixedPlain = Dm.run("check", "-r", "leaks", leaky);
        Dm.Result fixed = Dm.run("check", "-r", "leaks", "--progress=json", leaky2);
        assertEquals(0, fixed.exitCode(), fixed.err());
        assertEquals(fixedPlain.out(), fixed.out());
        assertTrue(fixed.out().contains("1 leaked clusters"), fixed.out());
        assertEquals(List.of("tables", "refcounts", "repair", "tables", "refcounts"),
                phases(progressLines(fixed.err())));
        assertTrue(fixed.err().endsWith("Repairing cluster 21 refcount=1 reference=0\n"), "check's messages last");
        assertArrayEquals(Files.readAllBytes(leaky), Files.readAllBytes(leaky2));
        assertEquals(0, Qemu.check(leaky2, "qcow2").exitCode());
    }

    /** Appends a zeroed cluster to a 64 KiB-cluster qcow2 file and gives it refcount 1 (16-bit refcounts). */
    private static void plantLeak(Path qcow2) throws Exception {
        try (var ch = java.nio.channels.FileChannel.open(qcow2, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(8);
            ch.read(b, 48);
            long refcountTable = b.getLong(0);
            ch.read(b.clear(), refcountTable);
            long block = b.getLong(0);
            long cluster = ch.size() / 65536;
            assertEquals(21, cluster, "the layout qemu-img 7.2 writes for this image");
            ch.write(java.nio.ByteBuffer.allocate(65536), ch.size());
            ch.write(java.nio.ByteBuffer.allocate(2).putShort(0, (short) 1), block + 2 * cluster);
        }
    }

    /** Plain lines when stderr is no terminal: the phase's name, then a line every 10 %, ending at 100 %. */
    @Test
    void plainLinesEveryTenPercent() throws Exception {
        Path img = image("l.qcow2", "qcow2", "64G", "write -P 7 0 1M", "write -P 9 40G 1M");
        Dm.Result r = Dm.run("check", "-p", img);
        assertEquals(0, r.exitCode(), r.err());
        List<String> lines = r.err().lines().toList();
        assertEquals("  [tables]", lines.getFirst(), r.err());
        assertTrue(lines.contains("  [refcounts]"), r.err());
        List<Integer> percents = new ArrayList<>();
        Matcher m = Pattern.compile("^  tables: (\\d+)% \\(").matcher("");
        for (String l : lines) {
            if (m.reset(l).find()) {
                percents.add(Integer.parseInt(m.group(1)));
            }
        }
        assertEquals(List.of(10, 20, 30, 40, 50, 60, 70, 80, 90, 100), percents, r.err());
        assertEquals(Dm.run("check", img).out(), r.out());
    }

    /** A TiB sparse disk: millions of table entries, a few lines (reports are throttled and deduplicated). */
    @ParameterizedTest
    @CsvSource({"qcow2, 4T", "vhdx, 4T", "vdi, 1T"})
    void aTibSparseImagePrintsAFewLines(String format, String size) throws Exception {
        Path img = image("big." + format, format, size, "write -P 7 0 1M", "write -P 9 100G 1M");
        Dm.Result json = Dm.run("check", "--progress=json", img);
        assertEquals(0, json.exitCode(), json.err());
        List<Line> lines = progressLines(json.err());
        assertTrue(lines.size() <= 60, lines.size() + " lines");
        long tables = total(lines, "tables");
        long disk = virtualSize(img);
        assertTrue(format.equals("qcow2") ? tables >= disk : tables == disk, tables + " of " + disk);
        Dm.Result plain = Dm.run("check", "-p", img);
        assertTrue(plain.err().lines().count() <= 30, plain.err());
        Dm.Result measured = Dm.run("measure", "--progress=json", "-O", "qcow2", img);
        assertTrue(progressLines(measured.err()).size() <= 60, measured.err());
    }

    @Test
    void theBarIsDrawnOnATerminal() throws Exception {
        Path img = image("t.qcow2", "qcow2", "256G", "write -P 7 0 1M", "write -P 9 200G 1M");
        Qemu.Result r = Processes.onTerminal(Processes.args(Processes.diskmorphCommand(), "check", "-p", img),
                Map.of("DISKMORPH_NO_AOT", "1"), 120);
        assertEquals(0, r.exitCode(), r.out() + r.err());
        String screen = r.out(); // the terminal shows stdout and stderr
        assertTrue(screen.contains("[tables]") && screen.contains("[refcounts]"), screen);
        Matcher m = Pattern.compile("\\r  \\[[#-]{30}\\] +(\\d+)% [^\\r\\n]*\u001b\\[K").matcher(screen);
        List<Integer> drawn = new ArrayList<>();
        while (m.find()) {
            drawn.add(Integer.parseInt(m.group(1)));
        }
        assertTrue(drawn.size() >= 2, "no bar drawn: " + screen);
        assertEquals(100, drawn.getLast(), screen);
        // the bar's line is ended before the report, which starts on a line of its own
        assertTrue(screen.contains("\u001b[K\r\nNo errors were found on the image."), screen);
    }

    @Test
    void measureWalksTheGuestBytesAndThenThePlanner() throws Exception {
        Path img = image("m.qed", "qed", "64M", "write -P 7 0 1M", "write -P 9 40M 2M");
        long size = virtualSize(img);
        for (String target : new String[]{"qcow2", "qed", "qcow", "vdi", "raw"}) {
            Dm.Result plain = Dm.run("measure", "--output=json", "-O", target, img);
            Dm.Result withProgress = Dm.run("measure", "--output=json", "--progress=json", "-O", target, img);
            assertEquals(0, withProgress.exitCode(), withProgress.err());
            assertEquals(plain.out(), withProgress.out(), target);
            List<Line> lines = progressLines(withProgress.err());
            assertEquals(List.of("measure"), phases(lines), target);
            assertEquals(size, total(lines, "measure"), target);
        }
        Dm.Result plain = Dm.run("measure", "--in-place", "-O", "qcow2", img);
        Dm.Result inPlace = Dm.run("measure", "--in-place", "--progress=json", "-O", "qcow2", img);
        assertEquals(plain.out(), inPlace.out());
        List<String> phases = phases(progressLines(inPlace.err()));
        assertEquals("measure", phases.getFirst());
        assertTrue(phases.containsAll(List.of("survey", "plan")), phases.toString());
        Dm.Result lines = Dm.run("measure", "-p", "-O", "qcow2", img);
        assertTrue(lines.err().startsWith("  [measure]\n"), lines.err());
        assertTrue(lines.err().contains("  measure: 100% (64 MiB of 64 MiB)"), lines.err());
    }

    /**
     * measure's one walk for several block sizes (QED and qcow ask for their
     * L2 coverage and their cluster) counts what qemu-img map's data
     * extents cover, each block once.
     */
    @Test
    void oneWalkCountsEachBlockSizeAsTheMapShowsIt() throws Exception {
        Path img = image("w.qcow2", "qcow2", "64M", "write -P 1 0 4k", "write -P 2 100k 8k", "write -P 3 1084k 10k",
                "write -P 4 5M 1M", "write -z 7M 1M", "write -P 5 20479k 2k", "write -P 6 63M 1M");
        long[] units = {4096, 65536, 1 << 20, 32 << 20};
        long[] expected = new long[units.length];
        for (int i = 0; i < units.length; i++) {
            java.util.TreeSet<Long> blocks = new java.util.TreeSet<>();
            for (Qemu.MapLine m : Qemu.map(img, "qcow2")) {
                if (m.data() && !m.zero()) {
                    for (long b = m.start() / units[i]; b * units[i] < m.start() + m.length(); b++) {
                        blocks.add(b);
                    }
                }
            }
            expected[i] = blocks.size() * units[i];
        }
        try (var source = io.diskmorph.image.Images.open(img, io.diskmorph.image.OpenOptions.forReading())) {
            assertArrayEquals(expected, io.diskmorph.image.MeasurableFormat.dataBytes(source, units));
            for (int i = 0; i < units.length; i++) {
                assertEquals(expected[i], io.diskmorph.image.MeasurableFormat.dataBytes(source, units[i]));
            }
        }
    }

    @Test
    void recoverReportsTheBytesItRestores() throws Exception {
        Path img = image("a.qcow2", "qcow2", "16M", "write -P 0x5a 0 1M", "write -P 0x33 4M 512k");
        byte[] original = Files.readAllBytes(img);
        InPlaceSafetyTest.convertAndCut(img, "qed", 3);
        Dm.Result r = Dm.run("recover", "--progress=json", img);
        assertEquals(0, r.exitCode(), r.err());
        assertEquals(img + ": " + Recovery.Outcome.RESTORED_SOURCE.text() + "\n", r.out(), "stdout as without -p");
        List<Line> lines = progressLines(r.err());
        assertEquals(List.of("journal", "restore", "sync", "cleanup"), phases(lines));
        assertTrue(RECOVERY_PHASES.containsAll(phases(lines)));
        assertTrue(total(lines, "restore") > 0, r.err());
        assertEquals(Files.size(dir.resolve("a.qcow2")), original.length);
        assertArrayEquals(original, Files.readAllBytes(img));
        // nothing to recover: no phase at all, the same answer
        Dm.Result nothing = Dm.run("recover", "-p", img);
        assertEquals("", nothing.err());
        assertEquals(Dm.run("recover", img).out(), nothing.out());
    }

    @Test
    void rollbackReportsItsPhases() throws Exception {
        Path img = image("r.qcow2", "qcow2", "16M", "write -P 0x5a 0 1M", "write -P 0x33 4M 512k");
        byte[] original = Files.readAllBytes(img);
        Dm.run("convert", "--in-place", "--keep-rollback", "-O", "qed", img).ok();
        Dm.Result r = Dm.run("rollback", "-p", img);
        assertEquals(0, r.exitCode(), r.err());
        assertEquals(img + ": rolled back to the original format\n", r.out());
        List<String> lines = r.err().lines().filter(l -> l.startsWith("  [") || l.contains(": 100% (")).toList();
        assertEquals(List.of("  [journal]", "  journal: 100%", "  [switch]", "  [restore]", "  restore: 100%",
                "  [sync]", "  [cleanup]"), lines.stream().map(l -> l.replaceAll(" \\(.*", "")).toList(), r.err());
        assertArrayEquals(original, Files.readAllBytes(img));

        Dm.run("convert", "--in-place", "--keep-rollback", "-O", "qed", img).ok();
        Dm.Result json = Dm.run("rollback", "--progress=json", "--output=json", img);
        assertEquals(0, json.exitCode(), json.err());
        assertTrue(json.json().get("rolled-back").asBoolean(), json.out());
        List<Line> parsed = progressLines(json.err());
        assertEquals(List.of("journal", "switch", "restore", "sync", "cleanup"), phases(parsed));
        assertArrayEquals(original, Files.readAllBytes(img));
    }

    @Test
    void aProgressFormatOtherThanJsonOrHumanIsAUsageError() {
        Path img = image("u.qcow2", "qcow2", "1M");
        for (String cmd : new String[]{"check", "measure", "recover", "rollback"}) {
            Dm.Result r = cmd.equals("measure") ? Dm.run(cmd, "--progress=xml", "-O", "qcow2", img)
                    : Dm.run(cmd, "--progress=xml", img);
            assertEquals(ExitCodes.USAGE, r.exitCode(), cmd + ": " + r.err());
            assertTrue(r.err().startsWith("diskmorph: --progress must be json or human, not 'xml'\n"), r.err());
        }
    }
}
