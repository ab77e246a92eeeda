package io.diskmorph.cli;

import com.fasterxml.jackson.databind.JsonNode;
import io.diskmorph.image.ExitCodes;
import io.diskmorph.testing.Dm;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.*;

/**
 * --output=json for the commands qemu-img gives none (create, compare) and
 * diskmorph's own (recover, rollback): one object on stdout with the
 * README's field names, exit codes as without it.
 */
class JsonOutputTest {
    @TempDir
    Path dir;

    @Test
    void createCompareRollbackRecover() throws Exception {
        Path a = dir.resolve("a.qcow2");
        JsonNode created = Dm.run("create", "-f", "qcow2", "--output=json", "-o", "cluster_size=4k", a, "10M").ok()
                .json();
        assertEquals("qcow2", created.get("format").asText());
        assertEquals(10L << 20, created.get("virtual-size").asLong());
        assertEquals("4k", created.get("options").get("cluster_size").asText());
        assertTrue(created.get("backing-filename").isNull());
        assertEquals(10L << 20, Qemu.img("info", "--output=json", a).ok().json().get("virtual-size").asLong());
        assertEquals(4096, Qemu.img("info", "--output=json", a).ok().json().get("cluster-size").asLong());

        Path b = dir.resolve("b.qcow2");
        Files.copy(a, b);
        Qemu.io(b, "qcow2", "write -P 1 1M 4k");
        Dm.Result differ = Dm.run("compare", "--output=json", a, b);
        assertEquals(ExitCodes.COMPARE_DIFFERENT, differ.exitCode(), differ.err());
        assertFalse(differ.json().get("identical").asBoolean());
        assertEquals(1L << 20, differ.json().get("first-difference").asLong());
        assertEquals(Qemu.img("compare", a, b).out().strip(), differ.json().get("message").asText());
        JsonNode same = Dm.run("compare", "--output=json", a, a).ok().json();
        assertTrue(same.get("identical").asBoolean());
        assertTrue(same.get("first-difference").isNull());

        byte[] original = Files.readAllBytes(a);
        Dm.run("convert", "--in-place", "--keep-rollback", "-O", "qed", a).ok();
        JsonNode rolled = Dm.run("rollback", "--output=json", a).ok().json();
        assertTrue(rolled.get("rolled-back").asBoolean());
        assertArrayEquals(original, Files.readAllBytes(a));
        JsonNode recovered = Dm.run("recover", "--output=json", a).ok().json();
        assertEquals("nothing-to-do", recovered.get("outcome").asText());
        assertEquals(a.toString(), recovered.get("image").asText());

        Dm.Result bad = Dm.run("recover", "--output=xml", a);
        assertEquals(ExitCodes.USAGE, bad.exitCode(), bad.err());
        bad.oneLineError();
    }

    /** compare -p / --progress=json: on stderr, guest bytes walked up to the larger virtual size. */
    @Test
    void compareProgress() throws Exception {
        Path a = dir.resolve("p.qcow2");
        Qemu.create(a, "qcow2", "64M");
        Qemu.io(a, "qcow2", "write -P 3 0 8M", "write -P 4 40M 8M");
        Path b = dir.resolve("p.raw");
        Qemu.img("convert", "-O", "raw", a, b).ok();
        Dm.Result r = Dm.run("compare", "--progress=json", "--output=json", a, b).ok();
        assertTrue(r.json().get("identical").asBoolean(), r.out());
        long last = -1;
        for (String line : r.err().lines().toList()) {
            JsonNode j = Qemu.JSON.readTree(line);
            assertEquals(64L << 20, j.get("bytes-total").asLong());
            assertTrue(j.get("bytes-done").asLong() >= last, line);
            last = j.get("bytes-done").asLong();
        }
        assertEquals(64L << 20, last, "the last line reports the whole disk walked: " + r.err());
        Dm.Result lines = Dm.run("compare", "-p", a, b).ok();
        assertEquals("Images are identical.", lines.out().strip());
        assertTrue(lines.err().lines().anyMatch(l -> l.startsWith("progress: 100%")), lines.err());
        assertEquals("", Dm.run("compare", "-p", "-q", a, b).ok().err(), "quiet: no progress");
    }
}
