package io.diskmorph.convert;

import com.fasterxml.jackson.databind.JsonNode;
import io.diskmorph.testing.Dm;
import io.diskmorph.testing.Processes;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Progress of an in-place conversion (-p, --progress=json), on stderr so
 * that stdout keeps the report: each phase as it starts, and the bytes of
 * the phases that write (the journaled pairs' write phase) or move data
 * (the roll-forward to raw), up to their totals.
 */
class InPlaceProgressTest {
    @TempDir
    Path dir;

    /** A qcow2 image written backwards in 64 KiB pieces, so the conversion to raw moves most of its clusters. */
    private Path scattered() {
        Path img = dir.resolve("s.qcow2");
        Qemu.create(img, "qcow2", "16M", "cluster_size=64k");
        List<String> cmds = new ArrayList<>();
        for (long o = (16 << 20) - (64 << 10); o >= 0; o -= 64 << 10) {
            cmds.add("write -P " + (1 + o / 65536 % 250) + " " + o + " 64k");
        }
        Qemu.io(img, "qcow2", cmds.toArray(String[]::new));
        return img;
    }

    @Test
    void jsonProgressNamesEachPhaseAndCountsTheMovedBytes() throws Exception {
        Path img = scattered();
        Path copy = dir.resolve("copy.raw");
        Qemu.img("convert", "-O", "raw", img, copy).ok();
        Dm.Result r = Dm.run("convert", "--in-place", "--progress=json", "--output=json", "-O", "raw", img).ok();
        JsonNode report = Qemu.JSON.readTree(r.out()); // stdout is the report alone
        long moved = report.get("moved-bytes").asLong();
        assertTrue(moved > 8 << 20, report.toString());
        Map<String, long[]> phases = new LinkedHashMap<>();
        for (String line : r.err().lines().toList()) {
            JsonNode j = Qemu.JSON.readTree(line); // every line parses on its own
            String phase = j.get("phase").asText();
            long done = j.get("bytes-done").asLong();
            long total = j.get("bytes-total").asLong();
            long[] was = phases.computeIfAbsent(phase, k -> new long[]{-1, -1});
            assertTrue(done >= was[0], "progress went back: " + line);
            was[0] = done;
            was[1] = Math.max(was[1], total);
        }
        assertTrue(phases.keySet().containsAll(List.of("check", "survey", "relocate", "move", "journal", "switch")),
                "phases: " + phases.keySet());
        long[] move = phases.get("move");
        // the rounds move every misplaced unit but unit 0, which the journaled last step writes
        assertEquals(moved - (64 << 10), move[1], "the move phase's total: the bytes the report says moved");
        assertEquals(move[1], move[0], "the last line of the move phase reports completion");
        assertArrayEquals(Files.readAllBytes(copy), Files.readAllBytes(img));
    }

    @Test
    void plainLinesEveryTenPercentWhenNotATerminal() throws Exception {
        Path img = scattered();
        Dm.Result r = Dm.run("convert", "--in-place", "-p", "-O", "raw", img).ok();
        List<String> lines = r.err().lines().toList();
        assertTrue(lines.contains("  [move]"), r.err());
        List<Integer> percents = new ArrayList<>();
        Matcher m = Pattern.compile("^  move: (\\d+)% \\(").matcher("");
        for (String l : lines) {
            if (m.reset(l).find()) {
                percents.add(Integer.parseInt(m.group(1)));
            }
        }
        assertFalse(percents.isEmpty(), r.err());
        assertEquals(100, percents.getLast(), r.err());
        assertTrue(percents.size() <= 12, "a line every 10 %, not every round: " + percents);
        assertTrue(r.out().contains("-> raw in place"), "the report on stdout: " + r.out());
    }

    @Test
    void terminalBarIsRedrawnWhileWriting() throws Exception {
        Path img = dir.resolve("r.raw");
        Qemu.create(img, "raw", "64M");
        Qemu.io(img, "raw", "write -P 3 0 64M");
        Path copy = dir.resolve("copy.raw");
        Files.copy(img, copy);
        Qemu.Result r = Processes.onTerminal(Processes.args(Processes.diskmorphCommand(), "convert", "--in-place",
                "-p", "-O", "qcow2", "-o", "cluster_size=4k", img), Map.of("DISKMORPH_NO_AOT", "1"), 120);
        assertEquals(0, r.exitCode(), r.out() + r.err());
        String screen = r.out(); // the terminal shows stdout and stderr
        assertTrue(screen.contains("[write]"), screen);
        Matcher m = Pattern.compile("\\r  \\[[#-]{30}\\] +(\\d+)% [^\\r\\n]*\u001b\\[K").matcher(screen);
        List<Integer> drawn = new ArrayList<>();
        while (m.find()) {
            drawn.add(Integer.parseInt(m.group(1)));
        }
        assertFalse(drawn.isEmpty(), "no bar drawn: " + screen);
        assertEquals(100, drawn.getLast(), screen);
        assertEquals(0, Qemu.img("compare", "-f", "qcow2", "-F", "raw", img, copy).exitCode());
    }
}
