package io.diskmorph.copy;

import com.fasterxml.jackson.databind.JsonNode;
import io.diskmorph.testing.Dm;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.List;

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
