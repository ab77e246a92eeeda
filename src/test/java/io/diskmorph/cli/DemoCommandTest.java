package io.diskmorph.cli;

import io.diskmorph.testing.Dm;
import io.diskmorph.testing.Processes;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.BufferedReader;
import java.io.File;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The README's first command: every step converts in place, verifies, and nothing moves that need not. */
class DemoCommandTest {
    @TempDir
    Path dir;

    /** With --keep, the pictures stay beside the image: SVGs that rsvg-convert renders. */
    @Test
    void keptDemoKeepsEachStepsPicture() throws Exception {
        Dm.Result r = Dm.run("demo", "--size", "16M", "--keep");
        assertEquals(0, r.exitCode(), r.out() + r.err());
        List<Path> pictures = r.out().lines().filter(l -> l.startsWith("   picture: "))
                .map(l -> Path.of(l.substring("   picture: ".length()))).toList();
        assertEquals(4, pictures.size(), r.out());
        try {
            for (Path svg : pictures) {
                assertTrue(Files.readString(svg).contains("data-panel=\"after\""), svg.toString());
                io.diskmorph.testing.Qemu.run("rsvg-convert", "-o", dir.resolve("p.png").toString(), svg.toString())
                        .ok();
            }
        } finally {
            try (var files = Files.walk(pictures.getFirst().getParent())) {
                for (Path f : files.sorted(java.util.Comparator.reverseOrder()).toList()) {
                    Files.delete(f);
                }
            }
        }
    }

    @Test
    void demoConvertsVerifiesAndRollsBack() {
        Dm.Result r = Dm.run("demo", "--size", "96M");
        assertEquals(0, r.exitCode(), r.out() + r.err());
        String out = r.out();
        assertTrue(out.contains("2. in place raw -> qcow2") && out.contains("rollback record kept"), out);
        assertTrue(out.contains("3. rollback qcow2 -> raw") && out.contains("back byte for byte"), out);
        assertTrue(out.contains("4. in place raw -> qcow2"), out);
        assertTrue(out.contains("5. in place qcow2 -> qed"), out);
        assertTrue(out.contains("6. in place qed -> qcow2"), out);
        // qemu-img is installed for the tests: its check ran after every conversion
        assertEquals(4, out.lines().filter(l -> l.contains("qemu-img check clean")).count(), out);
        // raw -> qcow2 moves only the header's cluster; QED says why it moves what it moves; back to qcow2
        // nothing moves
        assertEquals(2, out.lines().filter(l -> l.contains("moved 64 KiB: in the target's header zone")).count(), out);
        assertTrue(out.contains("lies above free space down"), out);
        assertEquals(1, out.lines().filter(l -> l.contains("moved 0 B")).count(), out);
        assertTrue(out.contains("All steps verified"), out);
        // each conversion's picture, its path printed (the directory goes at the end without --keep)
        assertEquals(4, out.lines().filter(l -> l.matches("   picture: .*/step-\\d-[a-z0-9]+-to-[a-z0-9]+\\.svg .*--keep.*"))
                .count(), out);
    }

    /** The demo in a JVM of its own, its temporary directory under the test's; stdout is a pipe. */
    private Process start(String size) throws IOException {
        List<String> cmd = new ArrayList<>(List.of(Processes.javaBinary(), "--enable-native-access=ALL-UNNAMED",
                "-Djava.io.tmpdir=" + dir, "-cp", System.getProperty("java.class.path"), "io.diskmorph.cli.Main",
                "demo", "--size", size));
        return new ProcessBuilder(cmd).redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null"))).start();
    }

    private static CompletableFuture<String> drain(java.io.InputStream in) {
        return CompletableFuture.supplyAsync(() -> {
            try {
                return new String(in.readAllBytes(), StandardCharsets.UTF_8);
            } catch (IOException e) {
                return "";
            }
        });
    }

    private record Line(long nanos, String text) {
    }

    /**
     * Each step is printed when it is done, also through a pipe: the first
     * steps arrive well before the last line (they used to come all at once,
     * at the end).
     */
    @Test
    void stepsArePrintedAsTheyHappen() throws Exception {
        Process p = start("512M");
        CompletableFuture<String> err = drain(p.getErrorStream());
        List<Line> lines = new ArrayList<>();
        try (BufferedReader out = new BufferedReader(new InputStreamReader(p.getInputStream(),
                StandardCharsets.UTF_8))) {
            for (String l; (l = out.readLine()) != null; ) {
                lines.add(new Line(System.nanoTime(), l));
            }
        }
        assertTrue(p.waitFor(120, TimeUnit.SECONDS));
        assertEquals(0, p.exitValue(), err.join());
        long first = arrival(lines, "1. sample raw disk");
        long last = arrival(lines, "All steps verified");
        assertTrue(last - first >= TimeUnit.MILLISECONDS.toNanos(100),
                "step 1 arrived " + (last - first) / 1_000_000 + " ms before the end: " + lines);
        assertTrue(arrival(lines, "2. in place raw -> qcow2") < last, lines.toString());
    }

    private static long arrival(List<Line> lines, String prefix) {
        return lines.stream().filter(l -> l.text().startsWith(prefix)).findFirst()
                .orElseThrow(() -> new AssertionError("no line '" + prefix + "': " + lines)).nanos();
    }

    /**
     * Ctrl-C (SIGINT; SIGTERM where the build ignores SIGINT) in the middle of
     * the demo: the temporary directory it printed is removed, the process
     * says so in one line and exits with the signal's code.
     */
    @Test
    void interruptRemovesTheTemporaryDirectory() throws Exception {
        Process p = start("2G");
        CompletableFuture<String> err = drain(p.getErrorStream());
        BufferedReader out = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8));
        String header = out.readLine();
        assertTrue(header != null && header.startsWith("diskmorph demo in "), header + " " + err);
        Path demoDir = Path.of(header.substring("diskmorph demo in ".length()));
        assertTrue(Files.isDirectory(demoDir), demoDir + " exists while the demo runs");
        String step1 = out.readLine();
        assertTrue(step1 != null && step1.startsWith("1. sample raw disk"), step1);
        int signal = Processes.interruptSignal(p.pid());
        Qemu.run("kill", "-" + signal, String.valueOf(p.pid())).ok();
        assertTrue(p.waitFor(60, TimeUnit.SECONDS), "the demo did not stop");
        String rest = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertFalse(rest.contains("All steps verified"), "interrupted before the end: " + rest);
        assertEquals(128 + signal, p.exitValue(), err.join());
        assertEquals("diskmorph: interrupted: removed the demo directory " + demoDir, err.join().strip());
        assertFalse(Files.exists(demoDir), "the temporary directory is gone");
        try (var left = Files.list(dir)) {
            assertEquals(List.of(), left.toList());
        }
    }
}
