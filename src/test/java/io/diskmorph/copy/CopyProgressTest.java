package io.diskmorph.copy;

import com.fasterxml.jackson.databind.JsonNode;
import io.diskmorph.testing.Dm;
import io.diskmorph.testing.Processes;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Progress of a copy for programs (--progress=json: one object per line)
 * and for people when the output is not a terminal (-p: plain lines). The
 * total is the data the source mapping says must be copied, as qemu-img
 * counts it: holes and zero clusters are not part of it.
 */
class CopyProgressTest {
    @TempDir
    Path dir;

    private Path source() {
        Path src = dir.resolve("src.qcow2");
        Qemu.create(src, "qcow2", "64M");
        Qemu.io(src, "qcow2", "write -P 1 0 20M", "write -z 20M 4M", "write -P 2 40M 8M");
        return src;
    }

    @Test
    void jsonProgressIsOneObjectPerLineUpToTheTotal() throws Exception {
        Path src = source();
        Dm.Result r = Dm.run("convert", "--progress=json", "-O", "qcow2", src, dir.resolve("out.qcow2")).ok();
        List<String> lines = r.out().lines().toList();
        assertTrue(lines.size() >= 2, r.out());
        long last = -1;
        long total = -1;
        for (String line : lines) {
            JsonNode j = Qemu.JSON.readTree(line); // every line parses on its own
            long done = j.get("bytes-done").asLong();
            long t = j.get("bytes-total").asLong();
            assertTrue(done >= last, "progress went back: " + line);
            assertTrue(total < 0 || total == t, "total changed: " + line);
            last = done;
            total = t;
        }
        assertEquals(28L << 20, total, "data to copy: 20M + 8M, not the holes nor the zero clusters");
        assertEquals(total, last, "the last line reports completion");
        assertEquals(0, Qemu.compare(src, dir.resolve("out.qcow2")));
    }

    /**
     * -p on a terminal, as a person sees it: a real process on a
     * pseudo-terminal, a copy long enough for several redraw intervals (one
     * compressor on incompressible data: about a second). The bar is redrawn
     * in place ('\r', no new line) with the percentages in between, not
     * only at 100 %.
     */
    @Test
    void terminalBarIsRedrawnWhileCopying() throws Exception {
        Path src = dir.resolve("random.raw");
        byte[] chunk = new byte[8 << 20];
        Random rnd = new Random(3);
        try (FileChannel ch = FileChannel.open(src, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
            for (int i = 0; i < 12; i++) { // 96 MiB of data scattered over a sparse 1 GiB disk
                rnd.nextBytes(chunk);
                ch.write(ByteBuffer.wrap(chunk), (long) i * (80 << 20));
            }
            ch.write(ByteBuffer.wrap(new byte[1]), (1L << 30) - 1);
        }
        Path dst = dir.resolve("out.qcow2");
        Qemu.Result r = Processes.onTerminal(Processes.args(Processes.diskmorphCommand(), "convert", "-p", "-c",
                "-m", "1", "-O", "qcow2", src, dst), Map.of("DISKMORPH_NO_AOT", "1"), 120);
        assertEquals(0, r.exitCode(), r.out() + r.err());
        String screen = r.out();
        // each redraw starts with '\r' and ends by clearing the rest of the line; only the last adds a new line
        Pattern bar = Pattern.compile("\\r\\[[#-]{30}\\] +(\\d+)% [^\\r\\n]*\u001b\\[K");
        Matcher m = bar.matcher(screen);
        List<Integer> drawn = new ArrayList<>();
        int end = -1;
        while (m.find()) {
            assertTrue(end < 0 || m.start() == end, "redraws follow each other on one line: " + screen);
            drawn.add(Integer.parseInt(m.group(1)));
            end = m.end();
        }
        assertFalse(drawn.isEmpty(), "no bar drawn: " + screen);
        assertEquals(100, drawn.getLast(), screen);
        assertTrue(screen.substring(end).startsWith("\r\n") || screen.substring(end).startsWith("\n"),
                "a new line after the bar at 100 %: " + screen);
        for (int i = 1; i < drawn.size(); i++) {
            assertTrue(drawn.get(i) >= drawn.get(i - 1), "the bar went back: " + drawn);
        }
        long between = drawn.stream().filter(p -> p > 0 && p < 100).distinct().count();
        assertTrue(between >= 3, "percentages drawn while copying, not only at the end: " + drawn);
        assertEquals(0, Qemu.compare(src, dst));
    }

    @Test
    void plainLinesWhenNotATerminal() throws Exception {
        Path src = source();
        Dm.Result r = Dm.run("convert", "-p", "-O", "raw", src, dir.resolve("out.raw")).ok();
        List<String> lines = r.out().lines().toList();
        assertFalse(r.out().contains("\r"), "no carriage returns outside a terminal");
        assertTrue(lines.getFirst().startsWith("progress: 0%"), r.out());
        assertTrue(lines.getLast().startsWith("progress: 100% (28 MiB of 28 MiB"), r.out());
        assertTrue(lines.size() <= 12, "a line every 10% at most: " + r.out());
    }

    @Test
    void quietAndNothingToCopy() throws Exception {
        Path src = source();
        assertEquals("", Dm.run("convert", "-p", "-q", "-O", "qcow2", src, dir.resolve("q.qcow2")).ok().out());
        assertEquals("", Dm.run("convert", "-O", "qcow2", src, dir.resolve("n.qcow2")).ok().out());
        Path empty = dir.resolve("empty.qcow2");
        Qemu.create(empty, "qcow2", "1G");
        Dm.Result r = Dm.run("convert", "--progress=json", "-O", "qcow2", empty, dir.resolve("e.qcow2")).ok();
        assertEquals(List.of("{\"bytes-done\": 0, \"bytes-total\": 0}"), r.out().lines().toList());
    }

    @Test
    void compressedProgressCountsWholeClusters() throws Exception {
        Path src = source();
        Dm.Result r = Dm.run("convert", "-c", "--progress=json", "-O", "qcow2", src, dir.resolve("c.qcow2")).ok();
        JsonNode last = Qemu.JSON.readTree(r.out().lines().toList().getLast());
        assertEquals(28L << 20, last.get("bytes-total").asLong());
        assertEquals(28L << 20, last.get("bytes-done").asLong());
    }
}
