package io.diskmorph.copy;

import com.fasterxml.jackson.databind.JsonNode;
import io.diskmorph.testing.Dm;
import io.diskmorph.testing.Qemu;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * qemu-img as the judge of a copy: the same guest content (qemu-img compare),
 * a clean check, and the same allocation as qemu-img convert's own output
 * (qemu-img map without host offsets, which depend on where each tool puts
 * its metadata: present, zero, data, depth, and whether an offset exists,
 * which tells compressed clusters from plain ones).
 */
final class CopyOracle {
    private CopyOracle() {
    }

    /** One map range with qemu-img's flags, host offset dropped. */
    record Alloc(long start, long length, int depth, boolean present, boolean zero, boolean data, boolean offset) {
        boolean sameKind(Alloc o) {
            return depth == o.depth && present == o.present && zero == o.zero && data == o.data
                    && offset == o.offset;
        }
    }

    /** qemu-img map of an image (with its chain), adjacent ranges of one kind merged. */
    static List<Alloc> allocation(Path image, String format) {
        Qemu.Result r = format == null ? Qemu.img("map", "--output=json", image)
                : Qemu.img("map", "-f", format, "--output=json", image);
        r.ok();
        List<Alloc> out = new ArrayList<>();
        for (JsonNode n : r.json()) {
            Alloc a = new Alloc(n.get("start").asLong(), n.get("length").asLong(), n.get("depth").asInt(),
                    n.get("present").asBoolean(), n.get("zero").asBoolean(), n.get("data").asBoolean(),
                    n.has("offset"));
            if (!out.isEmpty() && out.getLast().sameKind(a)) {
                Alloc p = out.removeLast();
                a = new Alloc(p.start, p.length + a.length, a.depth, a.present, a.zero, a.data, a.offset);
            }
            out.add(a);
        }
        return out;
    }

    /**
     * Converts {@code src} with diskmorph and with qemu-img (same arguments)
     * and checks diskmorph's output against qemu-img's. Returns diskmorph's output.
     */
    static Path convertBoth(Path dir, Path src, String srcFormat, String targetFormat, String name, String... flags) {
        Path ours = dir.resolve(name + ".dm." + targetFormat);
        Path theirs = dir.resolve(name + ".qemu." + targetFormat);
        List<Object> dm = new ArrayList<>(List.of("convert"));
        List<Object> qemu = new ArrayList<>(List.of("convert"));
        if (srcFormat != null) {
            dm.addAll(List.of("-f", srcFormat));
            qemu.addAll(List.of("-f", srcFormat));
        }
        dm.addAll(List.of("-O", targetFormat));
        qemu.addAll(List.of("-O", targetFormat));
        dm.addAll(List.of((Object[]) flags));
        qemu.addAll(List.of((Object[]) flags));
        dm.addAll(List.of(src, ours));
        qemu.addAll(List.of(src, theirs));
        Dm.run(dm.toArray()).ok();
        Qemu.img(qemu.toArray()).ok();
        assertSameAsQemu(src, srcFormat, ours, theirs, targetFormat);
        return ours;
    }

    /** Same guest content as the source, clean check, qemu-img's allocation. */
    static void assertSameAsQemu(Path src, String srcFormat, Path ours, Path theirs, String targetFormat) {
        Qemu.Result cmp = srcFormat == null ? Qemu.img("compare", "-F", targetFormat, src, ours)
                : Qemu.img("compare", "-f", srcFormat, "-F", targetFormat, src, ours);
        assertEquals(0, cmp.exitCode(), "guest content differs: " + cmp.out() + cmp.err());
        if (!targetFormat.equals("raw")) {
            Qemu.Result check = Qemu.check(ours, targetFormat);
            assertEquals(0, check.exitCode(), "qemu-img check: " + check.out() + check.err());
            JsonNode j = check.json();
            assertEquals(0, j.path("corruptions").asInt(), "corruptions");
            assertEquals(0, j.path("leaks").asInt(), "leaks");
        }
        assertEquals(allocation(theirs, targetFormat), allocation(ours, targetFormat),
                "allocation differs from qemu-img convert's");
        assertTrue(ours.toFile().length() <= theirs.toFile().length() + 4 * 65536,
                "file is much larger than qemu-img's: " + ours.toFile().length() + " vs " + theirs.toFile().length());
    }
}
