package io.diskmorph.cli;

import com.fasterxml.jackson.databind.JsonNode;
import io.diskmorph.image.ExitCodes;
import io.diskmorph.testing.Dm;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

import static org.junit.jupiter.api.Assertions.*;

/**
 * --output=json for the commands qemu-img gives none (create, compare, copy
 * convert) and diskmorph's own (recover, rollback, layout, demo): one
 * object on stdout with the field names of docs/JSON.md, checked against
 * the real outcome, exit codes as without it; every command but completion
 * has it, and every key a command prints is documented.
 */
class JsonOutputTest {
    @TempDir
    Path dir;

    /** Keys met in the documents these tests parsed (docs/JSON.md must name each). */
    private static final Set<String> KEYS = new TreeSet<>();

    /** Collects {@code node}'s keys, recursively, except the free-form objects (options, layout's kinds). */
    private static JsonNode keys(JsonNode node) {
        if (node.isArray()) {
            node.forEach(JsonOutputTest::keys);
        } else if (node.isObject()) {
            for (var it = node.fields(); it.hasNext(); ) {
                var e = it.next();
                KEYS.add(e.getKey());
                if (!List.of("options", "bytes", "data").contains(e.getKey())) {
                    keys(e.getValue());
                }
            }
        }
        return node;
    }

    @AfterAll
    static void everyKeyIsDocumented() throws Exception {
        String doc = Files.readString(Path.of("docs/JSON.md"));
        List<String> missing = KEYS.stream().filter(k -> !doc.contains("`" + k + "`")).toList();
        assertEquals(List.of(), missing, "keys printed but not named in docs/JSON.md");
        assertTrue(Files.readString(Path.of("README.md")).contains("docs/JSON.md"), "the README links the page");
    }

    /** Every command but completion (a shell script) declares --output with json among its values. */
    @Test
    void everyCommandHasJsonOutput() {
        Map<String, Cli.Declaration> all = Main.declarations();
        assertTrue(all.containsKey("convert") && all.containsKey("demo"), all.keySet().toString());
        all.forEach((name, d) -> {
            if (name.equals("completion")) {
                return;
            }
            String label = d.optionLabels().get("--output");
            assertNotNull(label, name + " has no --output");
            assertTrue(label.contains("json"), name + ": --output " + label);
        });
    }

    /**
     * convert SRC DST: the copy's report against qemu-img's view of both
     * images: the target's virtual size, backing file and allocation as
     * qemu-img info says, the data written as qemu-img map says the source
     * holds it (the whole chain; with -B the top layer, zeros over the
     * backing file written as zeros).
     */
    @Test
    void copyConvert() throws Exception {
        Path base = dir.resolve("base.qcow2");
        Qemu.create(base, "qcow2", "16M");
        Qemu.io(base, "qcow2", "write -P 5 0 4M");
        Path src = dir.resolve("src.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", "-b", base.getFileName().toString(), "-F", "qcow2", src, "16M").ok();
        Qemu.io(src, "qcow2", "write -P 1 1M 1M", "write -z 2M 1M", "write -P 2 8M 512k");
        long chainData = 0;
        long topData = 0;
        long topZero = 0;
        for (Qemu.MapLine l : Qemu.map(src, "qcow2")) {
            chainData += l.data() ? l.length() : 0;
            topData += l.data() && l.depth() == 0 ? l.length() : 0;
            topZero += l.zero() && l.present() && l.depth() == 0 ? l.length() : 0;
        }
        assertEquals(3584L << 10, chainData);
        assertEquals(1L << 20, topZero);

        Path vmdk = dir.resolve("dst.vmdk");
        Dm.Result r = Dm.run("convert", "-O", "vmdk", "-p", "--output=json", src, vmdk).ok();
        JsonNode j = keys(r.json()); // stdout is the document alone: -p's lines went to stderr
        assertTrue(r.err().contains("progress: 100%"), r.err());
        JsonNode info = Qemu.img("info", "--output=json", vmdk).ok().json();
        assertEquals(src.toString(), j.get("source").asText());
        assertEquals("qcow2", j.get("source-format").asText(), "probed");
        assertEquals(vmdk.toString(), j.get("target").asText());
        assertEquals("vmdk", j.get("target-format").asText());
        assertEquals(info.get("format").asText(), j.get("target-format").asText());
        assertEquals(info.get("virtual-size").asLong(), j.get("virtual-size").asLong());
        assertEquals(info.get("actual-size").asLong(), j.get("actual-size").asLong());
        assertTrue(j.get("backing-filename").isNull() && !info.has("backing-filename"), j.toString());
        assertEquals(chainData, j.get("data-bytes").asLong(), "every data byte of the chain");
        assertEquals(0, j.get("compressed-bytes").asLong());
        assertEquals(0, j.get("zero-bytes").asLong(), "a new VMDK reads zeros: none written");
        assertFalse(j.get("compressed").asBoolean());
        assertTrue(j.get("seconds").asDouble() >= 0);
        assertEquals(0, Qemu.compare(src, vmdk));

        // a VHD's virtual size is its CHS geometry's, as qemu-img reads it back
        Path vhd = dir.resolve("dst.vhd");
        Dm.Result vr = Dm.run("convert", "-f", "qcow2", "-O", "vpc", "--output=json", src, vhd).ok();
        j = keys(vr.json());
        assertEquals(Qemu.img("info", "-f", "vpc", "--output=json", vhd).ok().json().get("virtual-size").asLong(),
                j.get("virtual-size").asLong());
        assertEquals(chainData, j.get("data-bytes").asLong());

        Path overlay = dir.resolve("top.qcow2");
        j = keys(Dm.run("convert", "-O", "qcow2", "-o", "cluster_size=4k", "-B", base.getFileName().toString(), "-F",
                "qcow2", "--output=json", src, overlay).ok().json());
        info = Qemu.img("info", "--output=json", overlay).ok().json();
        assertEquals(info.get("backing-filename").asText(), j.get("backing-filename").asText());
        assertEquals(info.get("backing-filename-format").asText(), j.get("backing-filename-format").asText());
        assertEquals(info.get("cluster-size").asLong(), 4096);
        assertEquals("4k", j.get("options").get("cluster_size").asText());
        assertEquals(info.get("virtual-size").asLong(), j.get("virtual-size").asLong());
        assertEquals(topData, j.get("data-bytes").asLong(), "the top layer only");
        assertEquals(topZero, j.get("zero-bytes").asLong(), "zeros over the backing file are written");
        assertEquals(0, Qemu.compare(src, overlay));

        Path packed = dir.resolve("packed.qcow2");
        j = keys(Dm.run("convert", "-O", "qcow2", "-c", "--output=json", src, packed).ok().json());
        assertTrue(j.get("compressed").asBoolean());
        assertEquals(chainData, j.get("data-bytes").asLong());
        assertEquals(chainData, j.get("compressed-bytes").asLong(), "patterns compress: every cluster compressed");
        assertEquals(Qemu.img("info", "--output=json", packed).ok().json().get("actual-size").asLong(),
                j.get("actual-size").asLong());
        assertEquals(0, Qemu.compare(src, packed));

        Dm.Result refused = Dm.run("convert", "-O", "qcow2", "--output=json", src, dir.resolve("no/such/dir.qcow2"));
        assertNotEquals(0, refused.exitCode());
        assertEquals("", refused.out(), "a failure prints no JSON");
        refused.oneLineError();
    }

    /** demo --output=json: the steps' figures; every conversion keeps or moves exactly the sample's data. */
    @Test
    void demo() throws Exception {
        Dm.Result r = Dm.run("demo", "--size", "16M", "--output=json").ok();
        JsonNode j = keys(r.json());
        assertTrue(j.get("verified").asBoolean());
        assertFalse(j.get("kept").asBoolean());
        assertFalse(Files.exists(Path.of(j.get("directory").asText())), "the directory is gone");
        assertEquals(16L << 20, j.get("virtual-size").asLong());
        assertEquals("qcow2", j.get("format").asText());
        long data = j.get("sample-data-bytes").asLong();
        assertEquals(2L << 20, data, "1 MiB every 8 MiB");
        JsonNode steps = j.get("steps");
        assertEquals(5, steps.size(), steps.toString());
        List<String> done = new java.util.ArrayList<>();
        for (JsonNode s : steps) {
            done.add(s.get("step").asInt() + " " + s.get("action").asText() + " " + s.get("source-format").asText()
                    + " " + s.get("target-format").asText());
            if (s.get("action").asText().equals("convert-in-place")) {
                assertEquals(data, s.get("kept-bytes").asLong() + s.get("moved-bytes").asLong(), s.toString());
                long why = 0;
                for (JsonNode b : s.get("moved-by-reason")) {
                    why += b.asLong();
                }
                assertEquals(s.get("moved-bytes").asLong(), why, s.toString());
                assertEquals("clean", s.get("qemu-img-check").asText());
            } else {
                assertTrue(s.get("byte-identical").asBoolean());
            }
        }
        assertEquals(List.of("2 convert-in-place raw qcow2", "3 rollback qcow2 raw", "4 convert-in-place raw qcow2",
                "5 convert-in-place qcow2 qed", "6 convert-in-place qed qcow2"), done);
        assertTrue(steps.get(0).get("keep-rollback").asBoolean());
    }

    /** layout --output=json: the image as qemu-img info names it, and bytes per kind that add up to the file. */
    @Test
    void layout() throws Exception {
        Path img = dir.resolve("l.qcow2");
        Qemu.create(img, "qcow2", "8M");
        Qemu.io(img, "qcow2", "write -P 1 1M 1M");
        JsonNode j = keys(Dm.run("layout", "--output=json", img).ok().json());
        JsonNode info = Qemu.img("info", "--output=json", img).ok().json();
        assertEquals(img.toString(), j.get("filename").asText());
        assertEquals(info.get("format").asText(), j.get("format").asText());
        assertEquals(info.get("virtual-size").asLong(), j.get("virtual-size").asLong());
        assertEquals(Files.size(img), j.get("file-length").asLong());
        long sum = 0;
        for (JsonNode n : j.get("bytes")) {
            sum += n.asLong();
        }
        assertEquals(Files.size(img), sum);
        assertEquals(1L << 20, j.get("bytes").get("guest data").asLong());
    }

    /** The documents of the commands whose names are qemu-img's: every key is on the page too. */
    @Test
    void qemuNamedDocumentsAreDocumented() throws Exception {
        Path img = dir.resolve("q.qcow2");
        Qemu.create(img, "qcow2", "8M");
        Qemu.io(img, "qcow2", "write -P 1 1M 1M");
        keys(Dm.run("info", "--output=json", img).ok().json());
        keys(Dm.run("map", "--output=json", img).ok().json());
        keys(Dm.run("check", "--output=json", img).ok().json());
        keys(Dm.run("measure", "--output=json", "-O", "qed", "--in-place", img).ok().json());
        keys(Dm.run("convert", "--in-place", "--dry-run", "--output=json", "-O", "qed", img).ok().json());
        JsonNode done = keys(Dm.run("convert", "--in-place", "--output=json", "-O", "vdi", img).ok().json());
        assertEquals("vdi", Qemu.img("info", "--output=json", img).ok().json().get("format").asText());
        assertEquals(done.get("final-length").asLong(), Files.size(img));
    }

    @Test
    void createCompareRollbackRecover() throws Exception {
        Path a = dir.resolve("a.qcow2");
        JsonNode created = Dm.run("create", "-f", "qcow2", "--output=json", "-o", "cluster_size=4k", a, "10M").ok()
                .json();
        assertEquals("qcow2", created.get("format").asText());
        assertEquals(10L << 20, created.get("virtual-size").asLong());
        assertEquals("4k", created.get("options").get("cluster_size").asText());
        assertTrue(created.get("backing-filename").isNull());
        keys(created);
        assertEquals(10L << 20, Qemu.img("info", "--output=json", a).ok().json().get("virtual-size").asLong());
        assertEquals(4096, Qemu.img("info", "--output=json", a).ok().json().get("cluster-size").asLong());

        Path b = dir.resolve("b.qcow2");
        Files.copy(a, b);
        Qemu.io(b, "qcow2", "write -P 1 1M 4k");
        Dm.Result differ = Dm.run("compare", "--output=json", a, b);
        assertEquals(ExitCodes.COMPARE_DIFFERENT, differ.exitCode(), differ.err());
        assertFalse(keys(differ.json()).get("identical").asBoolean());
        assertEquals(1L << 20, differ.json().get("first-difference").asLong());
        assertEquals(Qemu.img("compare", a, b).out().strip(), differ.json().get("message").asText());
        JsonNode same = Dm.run("compare", "--output=json", a, a).ok().json();
        assertTrue(same.get("identical").asBoolean());
        assertTrue(same.get("first-difference").isNull());

        byte[] original = Files.readAllBytes(a);
        Dm.run("convert", "--in-place", "--keep-rollback", "-O", "qed", a).ok();
        JsonNode rolled = keys(Dm.run("rollback", "--output=json", a).ok().json());
        assertTrue(rolled.get("rolled-back").asBoolean());
        assertArrayEquals(original, Files.readAllBytes(a));
        JsonNode recovered = keys(Dm.run("recover", "--output=json", a).ok().json());
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
