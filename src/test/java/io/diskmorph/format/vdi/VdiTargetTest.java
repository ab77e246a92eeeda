package io.diskmorph.format.vdi;

import com.fasterxml.jackson.databind.JsonNode;
import io.diskmorph.testing.Dm;
import io.diskmorph.testing.Oracles;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * VDI as the target of an in-place conversion, judged by qemu-img: raw,
 * qcow2 and QED sources become a dynamic VDI whose map follows the header
 * and whose data area starts at 1 MiB; 1 MiB blocks of guest data that sit
 * contiguous and aligned in the file stay, the rest moves (the block under
 * the header and map, misaligned or fragmented blocks); the host blocks are
 * dense (blocks_allocated counts them, qemu's next block goes at the end);
 * the result checks clean, compares equal, maps in diskmorph as in qemu, and
 * rollback gives the source back byte for byte. A source with a backing
 * file is refused (VDI has none), the file unchanged.
 */
class VdiTargetTest {
    @TempDir
    Path dir;

    private JsonNode convert(Path img, String from, String... more) {
        List<Object> args = new java.util.ArrayList<>(List.of("convert", "--in-place", "--keep-rollback",
                "--output=json", "-f", from, "-O", "vdi"));
        args.addAll(List.of(more));
        args.add(img);
        return Dm.run(args.toArray()).ok().json();
    }

    /** Converts, judges the VDI, rolls back; returns the plan. */
    private JsonNode assertConverts(Path img, String from) throws Exception {
        Path original = dir.resolve("original." + from);
        Files.copy(img, original);
        String sha = VdiFiles.sha256(img);
        List<Qemu.MapLine> before = Qemu.map(img, from);
        JsonNode dry = Dm.run("convert", "--in-place", "--dry-run", "--keep-rollback", "--output=json", "-f", from,
                "-O", "vdi", img).ok().json();
        assertEquals(sha, VdiFiles.sha256(img), "a dry run writes nothing");
        JsonNode plan = convert(img, from);
        for (String f : new String[]{"kept-bytes", "moved-bytes", "final-length", "extra-space"}) {
            assertEquals(dry.get(f), plan.get(f), "the dry run predicted " + f);
        }
        assertFalse(Files.exists(dir.resolve(img.getFileName() + ".dmjournal")), "journal retired");
        long size0 = plan.get("virtual-size").asLong();
        assertEquals(VdiFiles.unitBytes(before, 1L << 20, size0), plan.get("kept-bytes").asLong()
                + plan.get("moved-bytes").asLong(), "kept + moved are the 1 MiB blocks holding data: " + plan);
        Oracles.assertCheckClean(img, "vdi");
        assertEquals(0, Dm.run("check", img).exitCode(), "diskmorph's stricter check");
        Qemu.Result cmp = Qemu.img("compare", "-f", "vdi", "-F", from, img, original);
        assertEquals(0, cmp.exitCode(), "qemu-img compare with the original: " + cmp.out() + cmp.err());
        assertEquals("vdi", Qemu.img("info", "--output=json", img).ok().json().get("format").asText());
        assertEquals(0x200, VdiFiles.u32(img, 0x154), "the map right after the header");
        assertEquals(1L << 20, VdiFiles.u32(img, 0x158), "the data area at 1 MiB, after the map");
        List<Qemu.MapLine> after = Qemu.map(img, "vdi");
        Oracles.assertKeptInPlace(before, after, plan.get("moved-bytes").asLong());
        assertEquals(after, Dm.map(img, "vdi"), "diskmorph maps the VDI as qemu does");
        // dense host blocks: the file ends after blocks_allocated blocks, and qemu appends the next one there
        long allocated = VdiFiles.u32(img, 0x184);
        assertEquals((1L << 20) + allocated * (1L << 20), Files.size(img), "the file ends after the last block");
        Path written = dir.resolve("written.vdi");
        Files.copy(img, written);
        long size = Qemu.img("info", "--output=json", img).ok().json().get("virtual-size").asLong();
        Qemu.io(written, "vdi", "write -P 0x7e " + (size - 4096) + " 4096", "write -P 0x7d 0 512");
        Oracles.assertCheckClean(written, "vdi");
        Files.delete(written);
        System.out.printf("in place %s -> vdi: kept %d, moved %d %s, file %d -> %d, extra %d%n", from,
                plan.get("kept-bytes").asLong(), plan.get("moved-bytes").asLong(), plan.get("moved-by-reason"),
                plan.get("original-length").asLong(), plan.get("final-length").asLong(),
                plan.get("extra-space").asLong());
        Dm.run("rollback", img).ok();
        assertEquals(VdiFiles.sha256(original), VdiFiles.sha256(img), "rollback gives the source back");
        Files.delete(original);
        return plan;
    }

    /**
     * raw: the block under the header and map moves, holes stay holes (unallocated blocks), and since the host
     * blocks must be dense, a block that lies above a hole moves down into it; every other block stays.
     */
    @Test
    void rawKeepsAllButTheFirstBlock() throws Exception {
        Path img = dir.resolve("d.raw");
        Qemu.create(img, "raw", "10M");
        Qemu.io(img, "raw", "write -P 1 0 4k", "write -P 2 1M 1M", "write -P 3 3M 100k", "write -P 4 9M 1M");
        JsonNode plan = assertConverts(img, "raw");
        JsonNode why = plan.get("moved-by-reason");
        assertEquals(1L << 20, why.path("header-zone").asLong(), "the block under the header moves: " + plan);
        assertEquals(plan.get("moved-bytes").asLong(), why.path("header-zone").asLong()
                + why.path("compacted").asLong(), "nothing else but blocks above holes: " + plan);
        assertEquals(4L << 20, plan.get("kept-bytes").asLong() + plan.get("moved-bytes").asLong(), plan.toString());
        assertEquals(2L << 20, plan.get("kept-bytes").asLong(), "the blocks below the last hole stay: " + plan);
    }

    /** A qcow2 made from raw in place has its data at the guest offsets: its 1 MiB-aligned runs stay as blocks. */
    @Test
    void qcow2MadeFromRawKeepsItsBlocks() throws Exception {
        Path img = dir.resolve("d.qcow2");
        Qemu.create(img, "raw", "12M");
        Qemu.io(img, "raw", "write -P 1 2M 1M", "write -P 2 5M 2M", "write -P 3 11M 1M");
        Dm.run("convert", "--in-place", "-f", "raw", "-O", "qcow2", img).ok();
        Files.deleteIfExists(dir.resolve("d.qcow2.dmrollback"));
        JsonNode plan = assertConverts(img, "qcow2");
        // (qemu-img create -f raw writes the first 4 KiB, so guest block 0 holds data too, in a 64 KiB cluster)
        assertTrue(plan.get("kept-bytes").asLong() >= 2L << 20, "aligned 1 MiB runs stay: " + plan);
        assertFalse(plan.get("moved-by-reason").has("unaligned"), "no block is misaligned: " + plan);
    }

    /** qemu-made qcow2 and QED (64 KiB clusters, allocated in write order): what is not aligned moves. */
    @Test
    void qemuMadeQcow2AndQedConvert() throws Exception {
        for (String f : new String[]{"qcow2", "qed"}) {
            Path img = dir.resolve("q." + f);
            Qemu.create(img, f, "7M");
            Qemu.io(img, f, "write -P 1 0 64k", "write -P 2 1M 1M", "write -P 3 3M 100k", "write -z 4M 1M",
                    "write -P 4 7167k 1k");
            assertConverts(img, f);
        }
        // 1 MiB clusters: the qcow2's data lies 1 MiB-aligned after its tables; no block is copied for its
        // alignment, the blocks above the dead tables move down into them (the map's host blocks are dense)
        Path big = dir.resolve("b.qcow2");
        Qemu.create(big, "qcow2", "8M", "cluster_size=1M");
        Qemu.io(big, "qcow2", "write -P 1 1M 1M", "write -P 2 6M 2M");
        JsonNode plan = assertConverts(big, "qcow2");
        assertEquals(3L << 20, plan.get("kept-bytes").asLong() + plan.get("moved-bytes").asLong(), plan.toString());
        assertEquals(plan.get("moved-bytes").asLong(), plan.get("moved-by-reason").path("compacted").asLong(),
                "only compaction moves: " + plan);
    }

    /** VDI has no backing file: a qcow2 over a base is refused in one line, the file unchanged. */
    @Test
    void backingFilesAreRefused() throws Exception {
        Path base = dir.resolve("base.raw");
        Qemu.create(base, "raw", "4M");
        Path img = dir.resolve("top.qcow2");
        Qemu.create(img, "qcow2", "4M", "backing_file=base.raw", "backing_fmt=raw");
        Qemu.io(img, "qcow2", "write -P 5 0 64k");
        String sha = VdiFiles.sha256(img);
        Dm.Result r = Dm.run("convert", "--in-place", "-O", "vdi", img);
        assertEquals(66, r.exitCode(), r.err());
        assertTrue(r.oneLineError().contains("VDI has no backing files"), r.err());
        assertEquals(sha, VdiFiles.sha256(img));
        assertEquals(List.of("base.raw", "top.qcow2"), Files.list(dir).map(p -> p.getFileName().toString())
                .sorted().toList());
        Dm.Result o = Dm.run("convert", "--in-place", "-f", "raw", "-O", "vdi", "-o", "static=on", base);
        assertEquals(64, o.exitCode(), o.err());
        assertTrue(o.err().contains("a VDI made in place is dynamic"), o.err());
        o.oneLineError();
    }

    /** VirtualBox layout -> qcow2 -> VDI: the blocks stay through both conversions but for the dense packing. */
    @Test
    void roundTripThroughQcow2() throws Exception {
        Path img = dir.resolve("vbox.vdi");
        VdiFiles.virtualBox(img, 8L << 20, Map.of(0L, 1L, 2L, 0L, 5L, 2L, 7L, 3L), g -> VdiFiles.pattern(1 << 20, g));
        Path original = dir.resolve("first.vdi");
        Files.copy(img, original);
        Dm.run("convert", "--in-place", "-f", "vdi", "-O", "qcow2", img).ok();
        JsonNode plan = assertConverts(img, "qcow2");
        assertEquals(4L << 20, plan.get("kept-bytes").asLong() + plan.get("moved-bytes").asLong(), plan.toString());
        Qemu.Result cmp = Qemu.img("compare", "-f", "qcow2", "-F", "vdi", img, original);
        assertEquals(0, cmp.exitCode(), cmp.out() + cmp.err());
    }
}
