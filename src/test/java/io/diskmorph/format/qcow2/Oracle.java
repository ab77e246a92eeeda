package io.diskmorph.format.qcow2;

import com.fasterxml.jackson.databind.JsonNode;
import io.diskmorph.image.DiskImage;
import io.diskmorph.image.Images;
import io.diskmorph.image.OpenOptions;
import io.diskmorph.testing.Dm;
import io.diskmorph.testing.Qemu;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Iterator;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Assertions that compare diskmorph's view of an image with qemu-img's. */
final class Oracle {
    private Oracle() {
    }

    /** map --output=json: every entry equal. */
    static void assertMapEquals(Path image) {
        assertEquals(Qemu.map(image, null), Dm.map(image, null), "map of " + image);
    }

    /** Guest bytes read through diskmorph equal those of qemu-img convert -O raw. */
    static void assertBytesEqual(Path image, Path scratchDir) throws IOException {
        Path raw = Files.createTempFile(scratchDir, "ref", ".raw");
        Qemu.toRaw(image, null, raw);
        byte[] expected = Files.readAllBytes(raw);
        byte[] actual;
        try (DiskImage img = Images.open(image, OpenOptions.forReading())) {
            actual = new byte[Math.toIntExact(img.virtualSize())];
            ByteBuffer b = ByteBuffer.wrap(actual);
            // uneven read sizes exercise partial clusters and compressed clusters read in pieces
            int step = 7 * 4096 + 512;
            while (b.hasRemaining()) {
                int n = Math.min(step, b.remaining());
                img.read(b.slice(b.position(), n), b.position());
                b.position(b.position() + n);
            }
        }
        assertEquals(expected.length, actual.length, "virtual size of " + image);
        int diff = Arrays.mismatch(expected, actual);
        assertEquals(-1, diff, "guest bytes of " + image + " differ from qemu's at offset " + diff);
        Files.delete(raw);
    }

    /** qemu-img compare and diskmorph compare agree that two images are identical. */
    static void assertCompareIdentical(Path a, Path b) {
        assertEquals(0, Qemu.compare(a, b), "qemu-img compare " + a + " " + b);
        Dm.Result r = Dm.run("compare", a, b);
        assertEquals(0, r.exitCode(), r.out() + r.err());
    }

    /** info --output=json: every field qemu prints, with the same value, in the same order. */
    static void assertInfoEquals(Path image) {
        JsonNode q = Qemu.img("info", "--output=json", image).ok().json();
        JsonNode d = Dm.run("info", "--output=json", image).ok().json();
        assertEquals(fieldNames(q), fieldNames(d), "info fields of " + image);
        for (Iterator<Map.Entry<String, JsonNode>> it = q.properties().iterator(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            assertEquals(e.getValue(), d.get(e.getKey()), "info field " + e.getKey() + " of " + image);
        }
        JsonNode qs = q.path("format-specific").path("data");
        JsonNode ds = d.path("format-specific").path("data");
        assertEquals(fieldNames(qs), fieldNames(ds), "format-specific key order of " + image);
    }

    private static String fieldNames(JsonNode n) {
        StringBuilder sb = new StringBuilder();
        n.fieldNames().forEachRemaining(f -> sb.append(f).append(','));
        return sb.toString();
    }

    /** qemu-img check exits 0: no corruptions, no leaks. */
    static void assertCheckClean(Path image) {
        Qemu.Result r = Qemu.check(image, null);
        assertEquals(0, r.exitCode(), "qemu-img check " + image + ": " + r.out() + r.err());
        JsonNode j = r.json();
        assertEquals(0, j.path("corruptions").asLong(0), r.out());
        assertEquals(0, j.path("leaks").asLong(0), r.out());
        assertTrue(j.path("check-errors").asLong(-1) == 0, r.out());
    }

    /** The whole oracle for one image: map, bytes, info, compare with qemu's raw conversion. */
    static void assertAgreesWithQemu(Path image, Path scratchDir) throws IOException {
        assertMapEquals(image);
        assertBytesEqual(image, scratchDir);
        assertInfoEquals(image);
        Path raw = Files.createTempFile(scratchDir, "cmp", ".raw");
        Qemu.toRaw(image, null, raw);
        assertCompareIdentical(image, raw);
        // one byte changed: same exit code and the same first differing offset as qemu-img compare
        byte[] b = Files.readAllBytes(raw);
        if (b.length > 0) {
            int at = b.length / 2 + 1000 % Math.max(1, b.length / 2);
            b[at] ^= 0x40;
            Files.write(raw, b);
            Qemu.Result q = Qemu.img("compare", image, raw);
            Dm.Result d = Dm.run("compare", image, raw);
            assertEquals(1, q.exitCode(), q.out() + q.err());
            assertEquals(q.exitCode(), d.exitCode());
            assertEquals(q.out().strip(), d.out().strip());
        }
        Files.delete(raw);
    }
}
