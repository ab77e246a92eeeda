package io.diskmorph.format.parallels;

import com.fasterxml.jackson.databind.JsonNode;
import io.diskmorph.image.ExitCodes;
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
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Parallels as the target of an in-place conversion, judged by qemu-img:
 * raw, qcow2 and QED sources become a Parallels image laid out as
 * qemu-img creates one (the BAT after the header, data from the next
 * cluster); clusters that sit cluster-aligned past the BAT stay, the rest
 * moves (the cluster under the header and BAT, misaligned data); the file
 * ends with its last cluster (qemu's check counts any tail as a leak); the
 * result checks clean, compares equal, maps in diskmorph as in qemu; a
 * same-options conversion writes nothing; rollback gives the source back
 * byte for byte. A source with a backing file is refused, the file
 * unchanged.
 */
class ParallelsTargetTest {
    @TempDir
    Path dir;

    @ParameterizedTest(name = "{0} {1} -> parallels {2}")
    @CsvSource({"raw, '', ''", "raw, '', cluster_size=64k", "qcow2, cluster_size=64k, ''",
            "qcow2, cluster_size=1M, ''", "qed, cluster_size=64k, cluster_size=4k", "qed, cluster_size=4k, ''"})
    void convertsInPlaceAndRollsBack(String from, String createOptions, String options) throws Exception {
        Path img = dir.resolve("s." + from);
        if (createOptions.isEmpty()) {
            Qemu.create(img, from, "12M");
        } else {
            Qemu.create(img, from, "12M", createOptions);
        }
        Qemu.io(img, from, "write -P 1 5M 4k", "write -P 2 0 1M", "write -P 3 1536k 1k", "write -P 4 11M 1M",
                "write -P 5 7M 64k");
        Path original = dir.resolve("original." + from);
        Files.copy(img, original);
        byte[] bytes = Files.readAllBytes(img);
        List<Qemu.MapLine> before = Qemu.map(img, from);

        JsonNode dry = run(img, from, options, "--dry-run").ok().json();
        assertArrayEquals(bytes, Files.readAllBytes(img), "a dry run writes nothing");
        JsonNode plan = run(img, from, options).ok().json();
        for (String f : new String[]{"kept-bytes", "moved-bytes", "final-length", "extra-space"}) {
            assertEquals(dry.get(f), plan.get(f), "the dry run predicted " + f);
        }
        assertFalse(Files.exists(dir.resolve(img.getFileName() + ".dmjournal")), "journal retired");
        long kept = plan.get("kept-bytes").asLong();
        long moved = plan.get("moved-bytes").asLong();
        assertTrue(kept > 0, "aligned clusters stay: " + plan);

        Oracles.assertCheckClean(img, "parallels");
        assertEquals(0, Dm.run("check", img).exitCode(), "diskmorph's stricter check");
        Qemu.Result cmp = Qemu.img("compare", "-f", "parallels", "-F", from, img, original);
        assertEquals(0, cmp.exitCode(), "qemu-img compare with the original: " + cmp.out() + cmp.err());
        List<Qemu.MapLine> after = Qemu.map(img, "parallels");
        Oracles.assertKeptInPlace(before.stream().filter(l -> !l.zero()).toList(), after, moved);
        assertEquals(after, Dm.map(img, "parallels"), "diskmorph maps the converted image as qemu does");
        long cluster = plan.get("cluster-size").asLong();
        long lastEnd = after.stream().filter(Qemu.MapLine::data).mapToLong(l -> l.offset() + l.length()).max()
                .orElse(0);
        assertEquals(Math.ceilDiv(lastEnd, cluster) * cluster, Files.size(img), "the file ends with its last cluster");
        System.out.printf("in place %s %s -> parallels %s: kept %d, moved %d %s, file %d -> %d%n", from,
                createOptions, options, kept, moved, plan.get("moved-by-reason"), plan.get("original-length").asLong(),
                plan.get("final-length").asLong());

        // the same options again: nothing to change
        JsonNode again = Dm.run("convert", "--in-place", "--output=json", "-f", "parallels", "-O", "parallels",
                img).ok().json();
        assertTrue(again.get("nothing-to-change").asBoolean(), again.toString());

        Dm.run("rollback", img).ok();
        assertArrayEquals(Files.readAllBytes(original), Files.readAllBytes(img), "rollback gives the source back");
    }

    @Test
    void aBackedSourceIsRefused() throws Exception {
        Path base = dir.resolve("base.raw");
        Qemu.create(base, "raw", "4M");
        Path img = dir.resolve("top.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", "-b", base, "-F", "raw", img).ok();
        Qemu.io(img, "qcow2", "write -P 1 0 64k");
        byte[] bytes = Files.readAllBytes(img);
        Dm.Result r = Dm.run("convert", "--in-place", "-O", "parallels", img);
        assertEquals(ExitCodes.UNSUPPORTED, r.exitCode(), r.err());
        assertTrue(r.oneLineError().contains("no backing file"), r.err());
        assertArrayEquals(bytes, Files.readAllBytes(img));
    }

    private static Dm.Result run(Path img, String from, String options, String... flags) {
        List<Object> args = new java.util.ArrayList<>(List.of("convert", "--in-place", "--keep-rollback"));
        args.addAll(List.of(flags));
        args.addAll(List.of("--output=json", "-f", from, "-O", "parallels"));
        if (!options.isEmpty()) {
            args.addAll(List.of("-o", options));
        }
        args.add(img);
        return Dm.run(args.toArray());
    }
}
