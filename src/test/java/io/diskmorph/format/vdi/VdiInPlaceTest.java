package io.diskmorph.format.vdi;

import com.fasterxml.jackson.databind.JsonNode;
import io.diskmorph.testing.Dm;
import io.diskmorph.testing.Oracles;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * VDI as the source of an in-place conversion, judged by qemu-img. A VDI
 * laid out as VirtualBox lays it out (data area at a 1 MiB boundary) keeps
 * every allocated block at its host offset, to qcow2 and QED (QED only
 * compacts data above dead space); a qemu-made VDI (data 512-aligned)
 * moves its data blocks at the default cluster size (1 MiB, the block
 * size) and keeps them with 512-byte qcow2 clusters, and never moves what
 * reads as zeros (unallocated and discarded blocks, a static image's
 * unwritten blocks, which are holes of the file). The plan's kept and moved
 * bytes are what the map says; the result checks clean, compares equal, and
 * rollback gives the VDI back byte for byte.
 */
class VdiInPlaceTest {
    @TempDir
    Path dir;

    enum Sample {
        /** VirtualBox layout: map at 1 MiB, data at 2 MiB, blocks out of guest order, a discarded block. */
        VIRTUALBOX,
        /** qemu-img create + qemu-io: data right after the map (0x400), 512-aligned. */
        QEMU_DYNAMIC,
        /** qemu-img create -o static=on + qemu-io: every block mapped, unwritten ones are holes of the file. */
        QEMU_STATIC
    }

    private Path make(Sample s) throws Exception {
        Path img = dir.resolve("s.vdi");
        switch (s) {
            case VIRTUALBOX -> VdiFiles.virtualBox(img, 12L * VdiFiles.MIB + 1536,
                    Map.of(0L, 2L, 1L, 0L, 3L, -2L, 4L, 1L, 7L, 3L, 8L, 4L, 12L, 5L),
                    g -> VdiFiles.pattern(VdiFiles.MIB, g));
            case QEMU_DYNAMIC -> {
                Qemu.create(img, "vdi", "12M");
                Qemu.io(img, "vdi", "write -P 1 5M 4k", "write -P 2 0 1M", "write -P 3 1536k 1k",
                        "write -z 8M 1M", "write -P 4 11M 1M");
            }
            case QEMU_STATIC -> {
                Qemu.create(img, "vdi", "12M", "static=on");
                Qemu.io(img, "vdi", "write -P 1 5M 4k", "write -P 2 0 1M", "write -P 4 11M 1M");
            }
        }
        return img;
    }

    @ParameterizedTest(name = "{0} -> {1} {2}")
    @CsvSource({"VIRTUALBOX, qcow2, ''", "VIRTUALBOX, qcow2, cluster_size=64k", "VIRTUALBOX, qed, ''",
            "VIRTUALBOX, qed, cluster_size=64k", "QEMU_DYNAMIC, qcow2, ''", "QEMU_DYNAMIC, qcow2, cluster_size=512",
            "QEMU_DYNAMIC, qed, ''", "QEMU_STATIC, qcow2, ''", "QEMU_STATIC, qcow2, cluster_size=512",
            "QEMU_STATIC, qed, cluster_size=4k"})
    void convertsInPlaceAndRollsBack(Sample sample, String target, String options) throws Exception {
        Path img = make(sample);
        Path original = dir.resolve("original.vdi");
        Files.copy(img, original);
        String sha = VdiFiles.sha256(img);
        List<Qemu.MapLine> before = Qemu.map(img, "vdi");
        // guest bytes that are data and not holes of the file (a static image's holes read as zeros in qemu's map)
        long data = before.stream().filter(l -> l.data() && !l.zero()).mapToLong(Qemu.MapLine::length).sum();
        assertTrue(data > 0, "the sample has data");

        // with --keep-rollback the journal also saves the tail a shorter target cuts: the dry run is asked the same
        JsonNode dry = run(img, target, options, "--dry-run", "--keep-rollback").ok().json();
        assertEquals(sha, VdiFiles.sha256(img), "a dry run leaves the file byte-identical");
        JsonNode plan = run(img, target, options, "--keep-rollback").ok().json();
        for (String field : new String[]{"kept-bytes", "moved-bytes", "final-length", "extra-space"}) {
            assertEquals(dry.get(field), plan.get(field), "the dry run predicted " + field);
        }
        long kept = plan.get("kept-bytes").asLong();
        long moved = plan.get("moved-bytes").asLong();
        // units are target clusters: kept + moved are the clusters that hold data by qemu's map, no other
        long units = VdiFiles.unitBytes(before, plan.get("cluster-size").asLong(), plan.get("virtual-size").asLong());
        assertEquals(units, kept + moved, "kept + moved are the target clusters holding data (" + data
                + " bytes), nothing that reads as zeros: " + plan);
        long compacted = plan.get("moved-by-reason").path("compacted").asLong(0);
        boolean aligned = sample == Sample.VIRTUALBOX || options.equals("cluster_size=512");
        if (aligned) {
            assertEquals(0, moved - compacted, "every block stays at its host offset: " + plan);
            assertTrue(compacted == 0 || target.equals("qed"), "only QED compacts: " + plan);
        } else {
            assertEquals(0, kept, "512-aligned blocks cannot stay in " + options + " clusters: " + plan);
        }
        assertFalse(Files.exists(dir.resolve("s.vdi.dmjournal")), "journal retired");

        Oracles.assertCheckClean(img, target);
        Qemu.Result cmp = Qemu.img("compare", "-f", target, "-F", "vdi", img, original);
        assertEquals(0, cmp.exitCode(), "qemu-img compare with the original: " + cmp.out() + cmp.err());
        assertEquals(target, Qemu.img("info", "--output=json", img).ok().json().get("format").asText());
        List<Qemu.MapLine> after = Qemu.map(img, target);
        Oracles.assertKeptInPlace(before.stream().filter(l -> !l.zero()).toList(), after, moved);
        assertEquals(after, Dm.map(img, target), "diskmorph maps the converted image as qemu does");
        assertEquals(units, after.stream().filter(Qemu.MapLine::data).mapToLong(Qemu.MapLine::length).sum(),
                "the target's data are those clusters, what read as zeros is not data: " + after);
        System.out.printf("in place vdi %s -> %s %s: data %d, kept %d, moved %d %s, file %d -> %d, extra %d%n",
                sample, target, options, data, kept, moved, plan.get("moved-by-reason"),
                plan.get("original-length").asLong(), plan.get("final-length").asLong(),
                plan.get("extra-space").asLong());

        Dm.run("rollback", img).ok();
        assertEquals(VdiFiles.sha256(original), VdiFiles.sha256(img), "rollback gives the original VDI back");
        assertEquals(0, Qemu.img("check", img).exitCode(), "qemu-img checks the rolled-back VDI");
    }

    /**
     * In place to raw goes through qcow2 (VDI blocks sit where the header's
     * data offset fixes them): the result is what qemu-img convert -O raw
     * makes, byte for byte, and a VirtualBox-laid-out VDI keeps its blocks
     * in the first step (nothing moves but to the guest offsets).
     */
    @ParameterizedTest(name = "{0} -> raw")
    @org.junit.jupiter.params.provider.EnumSource(Sample.class)
    void convertsInPlaceToRaw(Sample sample) throws Exception {
        Path img = make(sample);
        Path copy = dir.resolve("copy.raw");
        Qemu.img("convert", "-f", "vdi", "-O", "raw", img, copy).ok();
        String sha = VdiFiles.sha256(img);
        JsonNode dry = run(img, "raw", "", "--dry-run").ok().json();
        assertEquals(sha, VdiFiles.sha256(img), "a dry run leaves the file byte-identical");
        assertTrue(dry.get("policy").asText().contains("qcow2"), dry.toString());
        JsonNode plan = run(img, "raw", "").ok().json();
        assertTrue(plan.get("extra-space").asLong() <= dry.get("extra-space").asLong(), plan.toString());
        if (sample == Sample.VIRTUALBOX) {
            List<String> reasons = new java.util.ArrayList<>();
            plan.get("moved-by-reason").fieldNames().forEachRemaining(reasons::add);
            assertEquals(List.of("to-guest-offset"), reasons,
                    "VirtualBox's 1 MiB-aligned blocks stay in the first step: " + plan);
        }
        org.junit.jupiter.api.Assertions.assertArrayEquals(Files.readAllBytes(copy), Files.readAllBytes(img),
                "every guest byte at its offset");
        assertEquals("raw", Qemu.img("info", "--output=json", img).ok().json().get("format").asText());
        assertFalse(Files.exists(dir.resolve("s.vdi.dmjournal")), "journal retired");
        assertFalse(Files.exists(dir.resolve("s.vdi.dmrollback")), "no rollback record for to-raw");
    }

    private static Dm.Result run(Path img, String target, String options, String... flags) {
        List<Object> args = new java.util.ArrayList<>(List.of("convert", "--in-place"));
        args.addAll(List.of(flags));
        args.addAll(List.of("--output=json", "-f", "vdi", "-O", target));
        if (!options.isEmpty()) {
            args.addAll(List.of("-o", options));
        }
        args.add(img);
        return Dm.run(args.toArray());
    }
}
