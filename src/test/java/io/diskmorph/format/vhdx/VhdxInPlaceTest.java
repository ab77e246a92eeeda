package io.diskmorph.format.vhdx;

import com.fasterxml.jackson.databind.JsonNode;
import io.diskmorph.testing.Dm;
import io.diskmorph.testing.Oracles;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.HexFormat;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * VHDX as the source of an in-place conversion, judged by qemu-img: qemu-
 * made dynamic and fixed images (1 MiB and 32 MiB blocks, zero block
 * states, a partial last block) keep every payload byte at its host offset
 * (to qcow2; a QED target only moves data down into dead space below its
 * end, "compacted"), check clean, compare equal to the original, and
 * --keep-rollback then rollback gives the original file back byte for byte.
 * qemu-img 7.2 reports no host offsets for VHDX: the source's offsets are
 * diskmorph's map, itself checked against the BAT read by the test.
 */
class VhdxInPlaceTest {
    @TempDir
    Path dir;

    static String sha256(Path p) throws Exception {
        return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(Files.readAllBytes(p)));
    }

    private List<String> listing() throws Exception {
        try (var s = Files.list(dir)) {
            return s.map(p -> p.getFileName().toString()).sorted().toList();
        }
    }

    @ParameterizedTest(name = "{0} {1} -> {2} {3}")
    @CsvSource(delimiter = '|', value = {
            "block_size=1M                                  | 12582912  | qcow2 | ''",
            "block_size=1M                                  | 12582912  | qed   | ''",
            "block_size=1M                                  | 12583424  | qcow2 | ''",
            "block_size=32M,block_state_zero=off            | 104857600 | qcow2 | ''",
            "block_size=32M                                 | 104857600 | qcow2 | cluster_size=64k",
            "block_size=32M                                 | 104857600 | qed   | ''",
            "subformat=fixed,block_size=1M,block_state_zero=off | 12582912 | qcow2 | ''",
            "subformat=fixed,block_size=1M,block_state_zero=off | 12582912 | qed | ''",
            "subformat=fixed,block_size=2M                  | 12582912  | qcow2 | ''"})
    void convertsInPlaceAndRollsBack(String create, long size, String target, String options) throws Exception {
        Path img = dir.resolve("s.vhdx");
        Qemu.create(img, "vhdx", String.valueOf(size), create.strip());
        Qemu.io(img, "vhdx", "write -P 0x11 0 64k", "write -P 0x22 1500k 700k", "write -z 3M 512k",
                "write -P 0x33 5M 1M", "write -P 0x44 " + (size - 3000) + " 3000");
        Path original = dir.resolve("original.vhdx");
        Files.copy(img, original);
        String sha = sha256(img);
        List<String> listing = listing();
        VhdxReadTest.assertHostOffsetsAreTheBats(img);
        List<Qemu.MapLine> before = Dm.map(img, "vhdx");
        long data = before.stream().filter(Qemu.MapLine::data).mapToLong(Qemu.MapLine::length).sum();
        List<Qemu.MapLine> written = written(before, Files.readAllBytes(img));

        JsonNode dry = run(img, target, options, "--dry-run", "--keep-rollback").ok().json();
        assertEquals(sha, sha256(img), "a dry run leaves the file byte-identical");
        assertEquals(listing, listing(), "a dry run creates no file");
        Dm.Result measured = options.isEmpty()
                ? Dm.run("measure", "--in-place", "--output=json", "-f", "vhdx", "-O", target, img)
                : Dm.run("measure", "--in-place", "--output=json", "-f", "vhdx", "-O", target, "-o", options, img);
        assertEquals(run(img, target, options, "--dry-run").ok().json().get("extra-space").asLong(),
                measured.ok().json().get("in-place").get("extra-space")
                .asLong(), "measure --in-place: the plan's extra space");

        JsonNode plan = run(img, target, options, "--keep-rollback").ok().json();
        for (String field : new String[]{"kept-bytes", "moved-bytes", "final-length", "extra-space"}) {
            assertEquals(dry.get(field), plan.get(field), "the dry run predicted " + field);
        }
        long zeroed = plan.path("zeroed-data-bytes").asLong(0);
        long kept = plan.get("kept-bytes").asLong();
        long moved = plan.get("moved-bytes").asLong();
        assertTrue(kept + moved <= data && kept + moved > 0, "data bytes are kept or moved: " + plan);
        long compacted = plan.get("moved-by-reason").path("compacted").asLong(0);
        assertEquals(0, moved - compacted, "every payload byte stays where it is: " + plan);
        assertTrue(compacted == 0 || target.equals("qed"), "only QED compacts: " + plan);
        if (target.equals("qcow2")) {
            assertTrue(kept > 0, plan.toString());
        }

        Oracles.assertCheckClean(img, target);
        Qemu.Result cmp = Qemu.img("compare", "-f", target, "-F", "vhdx", img, original);
        assertEquals(0, cmp.exitCode(), "qemu-img compare with the original: " + cmp.out() + cmp.err());
        assertEquals(target, Qemu.img("info", "--output=json", img).ok().json().get("format").asText());
        List<Qemu.MapLine> after = Qemu.map(img, target);
        Oracles.assertKeptInPlace(written, after, moved);
        assertEquals(after, Dm.map(img, target), "diskmorph maps the converted image as qemu does");
        System.out.printf("in place vhdx %s %d -> %s %s: data %d, kept %d, moved %d %s, zeroed %d, file %d -> %d,"
                        + " extra %d bytes%n", create.strip(), size, target, options, data, kept, moved,
                plan.get("moved-by-reason"), zeroed, plan.get("original-length").asLong(),
                plan.get("final-length").asLong(), plan.get("extra-space").asLong());

        Dm.run("rollback", img).ok();
        assertEquals(sha256(original), sha256(img), "rollback gives the original VHDX back");
        Files.delete(original);
        assertEquals(listing.stream().filter(n -> !n.equals("original.vhdx")).toList(), listing(),
                "no journal or rollback record left");
        assertEquals(0, Qemu.img("check", img).exitCode(), "qemu-img checks the rolled-back VHDX");
        assertFalse(Files.exists(dir.resolve("s.vhdx.dmrollback")));
    }

    /**
     * Blocks at odd MiB offsets (the spec allows any MiB; Hyper-V does not
     * keep blocks aligned to their size): the target cluster follows the
     * 1 MiB alignment, not the block size, so every payload byte stays.
     */
    @org.junit.jupiter.api.Test
    void blocksAtOddMiBOffsetsStay() throws Exception {
        Path img = dir.resolve("odd.vhdx");
        Qemu.create(img, "vhdx", "24M", "block_size=4M");
        Qemu.io(img, "vhdx", "write -P 0x11 0 4M", "write -P 0x22 8M 3M", "write -P 0x33 20M 4M");
        Path original = dir.resolve("odd-original.vhdx");
        Files.copy(img, original);
        long end = Math.ceilDiv(Files.size(img), VhdxFiles.MIB) * VhdxFiles.MIB + VhdxFiles.MIB; // an odd MiB
        for (long block : new long[]{0, 2, 5}) {
            long entry = VhdxFiles.batEntry(img, block);
            assertEquals(6, entry & 7);
            java.nio.ByteBuffer data = VhdxFiles.read(img, entry & 0xFFFFFFFFFFF00000L, 4 << 20);
            VhdxFiles.write(img, end, data);
            VhdxFiles.setBatEntry(img, block, end | 6);
            end += 5 * VhdxFiles.MIB; // odd MiB offsets each
        }
        assertEquals(0, Qemu.img("compare", "-f", "vhdx", "-F", "vhdx", img, original).exitCode());
        VhdxReadTest.assertHostOffsetsAreTheBats(img);
        List<Qemu.MapLine> before = written(Dm.map(img, "vhdx"), Files.readAllBytes(img));
        JsonNode plan = run(img, "qcow2", "", "--keep-rollback").ok().json();
        assertEquals(12L << 20, plan.get("kept-bytes").asLong(), "three whole blocks: " + plan);
        assertEquals(0, plan.get("moved-bytes").asLong(), plan.toString());
        assertEquals(1L << 20, plan.get("cluster-size").asLong(), "the target cluster follows the 1 MiB alignment");
        Oracles.assertCheckClean(img, "qcow2");
        assertEquals(0, Qemu.img("compare", "-f", "qcow2", "-F", "vhdx", img, original).exitCode());
        Oracles.assertKeptInPlace(before, Qemu.map(img, "qcow2"), 0);
        Dm.run("rollback", img).ok();
        assertEquals(0, Qemu.img("compare", "-f", "vhdx", "-F", "vhdx", img, original).exitCode());
    }

    private static Dm.Result run(Path img, String target, String options, String... flags) {
        List<Object> cmd = new java.util.ArrayList<>(List.of("convert", "--in-place"));
        cmd.addAll(List.of(flags));
        cmd.addAll(List.of("--output=json", "-f", "vhdx", "-O", target));
        if (!options.isEmpty()) {
            cmd.addAll(List.of("-o", options));
        }
        cmd.add(img);
        return Dm.run(cmd.toArray());
    }

    /**
     * The data runs of {@code map} cut into 64 KiB guest units, without the
     * units whose host bytes are all zero: a fixed image's unwritten blocks
     * are holes of the file, which read zeros and become unallocated in the
     * target (nothing to keep).
     */
    static List<Qemu.MapLine> written(List<Qemu.MapLine> map, byte[] file) {
        List<Qemu.MapLine> out = new java.util.ArrayList<>();
        long unit = 64 * 1024;
        for (Qemu.MapLine l : map) {
            if (!l.data()) {
                continue;
            }
            for (long g = l.start(); g < l.start() + l.length(); g = (g / unit + 1) * unit) {
                long end = Math.min(l.start() + l.length(), (g / unit + 1) * unit);
                int from = Math.toIntExact(l.offset() + g - l.start());
                int to = Math.toIntExact(from + end - g);
                boolean zero = true;
                for (int i = from; i < to && zero; i++) {
                    zero = file[i] == 0;
                }
                if (!zero) {
                    out.add(new Qemu.MapLine(g, end - g, 0, true, false, true, from));
                }
            }
        }
        return out;
    }
}
