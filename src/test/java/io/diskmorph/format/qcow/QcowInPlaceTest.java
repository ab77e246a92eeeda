package io.diskmorph.format.qcow;

import com.fasterxml.jackson.databind.JsonNode;
import io.diskmorph.testing.Dm;
import io.diskmorph.testing.Oracles;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The legacy upgrade qemu-img can only do by copying, in place: qcow ->
 * qcow2 keeps every data cluster at its host offset (the target's cluster
 * size follows the source's), qcow -> QED likewise; compressed clusters
 * move, decompressed; the backing file stays. Judged by qemu-img check,
 * compare and map; rollback gives the original bytes back.
 */
class QcowInPlaceTest {
    @TempDir
    Path dir;

    private Path sample(String name, String... extra) {
        Path img = dir.resolve(name);
        Qemu.create(img, "qcow", "16M", extra);
        Qemu.io(img, "qcow", "write -P 0x11 0 64k", "write -P 0x22 100k 8k", "write -P 0x33 5M 1M",
                "write -P 0x44 16380k 4k", "write -P 0x55 9M 4k");
        return img;
    }

    @ParameterizedTest(name = "qcow -> {0}")
    @CsvSource({"qcow2", "qed"})
    void everyClusterStays(String target) throws Exception {
        Path img = sample("s.qcow");
        Path original = dir.resolve("orig.qcow");
        Files.copy(img, original);
        List<Qemu.MapLine> before = Qemu.map(img, "qcow");
        JsonNode dry = Dm.run("convert", "--in-place", "--dry-run", "--output=json", "-O", target, img).ok().json();
        assertArrayEquals(Files.readAllBytes(original), Files.readAllBytes(img), "a dry run writes nothing");
        assertEquals(4096, dry.get("cluster-size").asLong(), "the target's cluster follows the source's");
        JsonNode plan = Dm.run("convert", "--in-place", "--keep-rollback", "--output=json", "-O", target, img).ok()
                .json();
        assertEquals(dry.get("moved-bytes"), plan.get("moved-bytes"));
        if (target.equals("qcow2")) {
            assertEquals(0, plan.get("moved-bytes").asLong(), "every qcow cluster stays for qcow2: " + plan);
        }
        Oracles.assertCheckClean(img, target);
        assertEquals(0, Qemu.img("compare", "-f", target, "-F", "qcow", img, original).exitCode());
        Oracles.assertKeptInPlace(before, Qemu.map(img, target), plan.get("moved-bytes").asLong());
        Dm.run("rollback", img).ok();
        assertArrayEquals(Files.readAllBytes(original), Files.readAllBytes(img), "rollback, byte for byte");
    }

    /** Compressed clusters move, decompressed; every other cluster stays. */
    @Test
    void compressedClustersMove() throws Exception {
        Path raw = dir.resolve("c.raw");
        Qemu.create(raw, "raw", "4M");
        Qemu.io(raw, "raw", "write -P 0x11 0 256k", "write -P 0x22 2M 64k");
        Path img = dir.resolve("c.qcow");
        Qemu.img("convert", "-c", "-f", "raw", "-O", "qcow", raw, img); // exits 1 after a complete image
        Qemu.io(img, "qcow", "write -P 0x33 1M 64k"); // uncompressed clusters beside the compressed ones
        Path original = dir.resolve("c-orig.qcow");
        Files.copy(img, original);
        // to raw, compressed clusters go through qcow2 in the same command (ToRawVia: decompressed there)
        Path direct = dir.resolve("c-direct.qcow");
        Files.copy(original, direct);
        JsonNode toRaw = Dm.run("convert", "--in-place", "--output=json", "-O", "raw", direct).ok().json();
        assertEquals("through qcow2, then roll-forward", toRaw.get("policy").asText(), toRaw.toString());
        assertEquals(0, Qemu.img("compare", "-f", "raw", "-F", "qcow", direct, original).exitCode());
        JsonNode plan = Dm.run("convert", "--in-place", "--output=json", "-O", "qcow2", img).ok().json();
        assertEquals(320L << 10, plan.get("moved-by-reason").get("compressed").asLong(), plan.toString());
        assertEquals(64L << 10, plan.get("kept-bytes").asLong(), plan.toString());
        Oracles.assertCheckClean(img, "qcow2");
        assertEquals(0, Qemu.img("compare", "-f", "qcow2", "-F", "qcow", img, original).exitCode());
        assertTrue(Qemu.compare(raw, img) != 0, "the later write shows");
        // and now, decompressed, to raw
        Dm.run("convert", "--in-place", "-O", "raw", img).ok();
        assertEquals(0, Qemu.img("compare", "-f", "raw", "-F", "qcow", img, original).exitCode());
    }

    /** A backing file cannot survive to raw: refused in one line, nothing written. */
    @Test
    void toRawRefusesABackingFile() throws Exception {
        Path base = dir.resolve("base.raw");
        Qemu.create(base, "raw", "16M");
        Path img = sample("r.qcow", "backing_file=base.raw", "backing_fmt=raw");
        byte[] before = Files.readAllBytes(img);
        Dm.Result r = Dm.run("convert", "--in-place", "-O", "raw", img);
        assertEquals(io.diskmorph.image.ExitCodes.UNSUPPORTED, r.exitCode(), r.err());
        assertTrue(r.oneLineError().contains("backing file"), r.err());
        assertArrayEquals(before, Files.readAllBytes(img));
    }

    /** qemu's images over a backing file have 512-byte clusters: a 512-byte qcow2 keeps them all, and the backing file. */
    @Test
    void backingFileStays() throws Exception {
        Path base = dir.resolve("base.raw");
        Qemu.create(base, "raw", "16M");
        Qemu.io(base, "raw", "write -P 0x66 0 16M");
        Path img = sample("b.qcow", "backing_file=base.raw", "backing_fmt=raw");
        Path original = dir.resolve("b-orig.qcow");
        Files.copy(img, original);
        JsonNode plan = Dm.run("convert", "--in-place", "--output=json", "-O", "qcow2", img).ok().json();
        assertEquals(512, plan.get("cluster-size").asLong());
        assertEquals(0, plan.get("moved-bytes").asLong(), plan.toString());
        Oracles.assertCheckClean(img, "qcow2");
        JsonNode info = Qemu.img("info", "--output=json", img).ok().json();
        assertEquals("base.raw", info.get("backing-filename").asText());
        assertEquals(0, Qemu.img("compare", "-f", "qcow2", "-F", "qcow", img, original).exitCode());
        assertTrue(Qemu.compare(base, img) != 0, "the overlay's data shows over the backing file");
    }
}
