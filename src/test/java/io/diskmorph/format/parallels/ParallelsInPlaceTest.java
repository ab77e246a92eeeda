package io.diskmorph.format.parallels;

import com.fasterxml.jackson.databind.JsonNode;
import io.diskmorph.testing.Dm;
import io.diskmorph.testing.Oracles;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Parallels as the source of an in-place conversion, judged by qemu-img.
 * qemu-img puts the data after the BAT rounded up to a whole cluster, so
 * every data cluster is aligned to the cluster size: with the target's
 * cluster size following the source's (the default), or any size that
 * divides it, every data cluster stays at its host offset (QED may still
 * move data down over the BAT's dead space: it compacts), also to VDI
 * (1 MiB blocks after a map that ends before the first MiB); with larger
 * target clusters, what no longer lines up moves. The plan's kept and
 * moved bytes are what the map says; the result checks clean, compares
 * equal, and rollback gives the Parallels file back byte for byte.
 */
class ParallelsInPlaceTest {
    @TempDir
    Path dir;

    private Path make(String createOptions) {
        Path img = dir.resolve("s.parallels");
        if (createOptions.isEmpty()) {
            Qemu.create(img, "parallels", "12M");
        } else {
            Qemu.create(img, "parallels", "12M", createOptions);
        }
        // out of guest order on the host, partial clusters, a zero write (parallels stores zeros as data)
        Qemu.io(img, "parallels", "write -P 1 5M 4k", "write -P 2 0 1M", "write -P 3 1536k 1k",
                "write -z 8M 64k", "write -P 4 11M 1M");
        return img;
    }

    @ParameterizedTest(name = "{0} -> {1} {2}")
    @CsvSource({"'', qcow2, ''", "'', qed, ''", "'', qcow2, cluster_size=64k", "cluster_size=64k, qcow2, ''",
            "cluster_size=64k, qed, cluster_size=4k", "cluster_size=64k, qcow2, cluster_size=2M",
            "'', vdi, ''", "cluster_size=64k, vmdk, ''"})
    void convertsInPlaceAndRollsBack(String source, String target, String options) throws Exception {
        Path img = make(source);
        Path original = dir.resolve("original.parallels");
        Files.copy(img, original);
        String sha = ParallelsFiles.sha256(img);
        List<Qemu.MapLine> before = Qemu.map(img, "parallels");

        JsonNode dry = run(img, target, options, "--dry-run", "--keep-rollback").ok().json();
        assertEquals(sha, ParallelsFiles.sha256(img), "a dry run leaves the file byte-identical");
        JsonNode plan = run(img, target, options, "--keep-rollback").ok().json();
        for (String field : new String[]{"kept-bytes", "moved-bytes", "final-length", "extra-space"}) {
            assertEquals(dry.get(field), plan.get(field), "the dry run predicted " + field);
        }
        long kept = plan.get("kept-bytes").asLong();
        long moved = plan.get("moved-bytes").asLong();
        long compacted = plan.get("moved-by-reason").path("compacted").asLong(0);
        long sourceCluster = source.isEmpty() ? 1 << 20 : 64 << 10;
        long targetCluster = plan.get("cluster-size").asLong();
        if (sourceCluster % targetCluster == 0) {
            assertEquals(0, moved - compacted, "every data cluster stays at its host offset: " + plan);
            assertTrue(kept > 0, plan.toString());
        } else {
            assertTrue(moved > 0, "clusters that no longer line up move: " + plan);
        }
        assertFalse(Files.exists(dir.resolve("s.parallels.dmjournal")), "journal retired");

        Oracles.assertCheckClean(img, target);
        Qemu.Result cmp = Qemu.img("compare", "-f", target, "-F", "parallels", img, original);
        assertEquals(0, cmp.exitCode(), "qemu-img compare with the original: " + cmp.out() + cmp.err());
        List<Qemu.MapLine> after = Qemu.map(img, target);
        Oracles.assertKeptInPlace(before, after, moved);
        System.out.printf("in place parallels %s -> %s %s: kept %d, moved %d %s, file %d -> %d, extra %d%n",
                source, target, options, kept, moved, plan.get("moved-by-reason"),
                plan.get("original-length").asLong(), plan.get("final-length").asLong(),
                plan.get("extra-space").asLong());

        Dm.run("rollback", img).ok();
        assertEquals(ParallelsFiles.sha256(original), ParallelsFiles.sha256(img), "rollback gives the original back");
        assertEquals(0, Qemu.img("check", img).exitCode(), "qemu-img checks the rolled-back image");
    }

    /**
     * To raw: an image whose BAT spans two clusters, and one with the old
     * magic, cannot move their own clusters (the BAT cannot move): they go
     * through qcow2, and the file becomes what qemu-img convert -O raw
     * makes, byte for byte; a qemu-made image at 64 KiB moves its own.
     */
    @Test
    void toRawDirectlyOrThroughQcow2() throws Exception {
        for (String kind : new String[]{"own", "long BAT", "old magic"}) {
            Path img = dir.resolve("r.parallels");
            Files.deleteIfExists(img);
            Qemu.create(img, "parallels", kind.equals("long BAT") ? "5M" : "4M",
                    kind.equals("long BAT") ? "cluster_size=4k" : "cluster_size=64k");
            Qemu.io(img, "parallels", "write -P 1 1M 64k", "write -P 2 0 64k", "write -P 3 3M 4k");
            if (kind.equals("old magic")) {
                Files.write(img, ParallelsHeader.MAGIC_OLD.getBytes(), java.nio.file.StandardOpenOption.WRITE);
                // host clusters 1, 2, 3 of 64 KiB in sectors: guest 16 -> 128, guest 0 -> 256, guest 48 -> 384
                ParallelsFiles.putEntry(img, 16, 128);
                ParallelsFiles.putEntry(img, 0, 256);
                ParallelsFiles.putEntry(img, 48, 384);
            }
            Path copy = dir.resolve("copy.raw");
            Files.deleteIfExists(copy);
            Qemu.img("convert", "-f", "parallels", "-O", "raw", img, copy).ok();
            JsonNode plan = Dm.run("convert", "--in-place", "--output=json", "-f", "parallels", "-O", "raw", img).ok()
                    .json();
            boolean via = plan.toString().contains("through qcow2");
            assertEquals(!kind.equals("own"), via, kind + ": " + plan);
            assertArrayEquals(Files.readAllBytes(copy), Files.readAllBytes(img), kind + ": the guest's bytes");
        }
    }

    private static Dm.Result run(Path img, String target, String options, String... flags) {
        List<Object> args = new java.util.ArrayList<>(List.of("convert", "--in-place"));
        args.addAll(List.of(flags));
        args.addAll(List.of("--output=json", "-f", "parallels", "-O", target));
        if (!options.isEmpty()) {
            args.addAll(List.of("-o", options));
        }
        args.add(img);
        return Dm.run(args.toArray());
    }
}
