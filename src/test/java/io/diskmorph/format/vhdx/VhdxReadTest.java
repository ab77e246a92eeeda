package io.diskmorph.format.vhdx;

import com.fasterxml.jackson.databind.JsonNode;
import io.diskmorph.image.ExitCodes;
import io.diskmorph.testing.Dm;
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
 * Images qemu-img 7.2 makes, dynamic and fixed, of every block size class:
 * diskmorph's info, guest bytes and check agree with qemu-img's; the host
 * offsets diskmorph's map reports (qemu-img 7.2 reports none for VHDX) are
 * the BAT's, read here independently; vhdiinfo (libvhdi) agrees on what it
 * reports.
 */
class VhdxReadTest {
    @TempDir
    Path dir;

    private static final String[] WRITES = {"write -P 0x11 0 64k", "write -P 0x22 1500k 700k",
            "write -z 3M 512k", "write -P 0x33 4M 1M"};

    private Path sample(String options, String size) {
        Path img = dir.resolve("s.vhdx");
        Qemu.create(img, "vhdx", size, options.split(" "));
        Qemu.io(img, "vhdx", WRITES);
        Qemu.io(img, "vhdx", "write -P 0x44 " + (Long.parseLong(size) - 1536) + " 1536");
        return img;
    }

    @ParameterizedTest
    @CsvSource(delimiter = '|', value = {
            "block_size=1M| 6291968",
            "block_size=8M| 20971520",
            "block_size=32M| 104857600",
            "block_size=256M| 268435456",
            "subformat=fixed,block_size=1M| 6292480",
            "subformat=fixed,block_size=16M,block_state_zero=off| 33554432",
            "block_size=1M,block_state_zero=off,log_size=8M| 8388608"})
    void readsLikeQemu(String options, String size) throws Exception {
        Path img = sample(options, size);
        byte[] original = Files.readAllBytes(img);
        Path ours = dir.resolve("ours.raw");
        Path qemus = dir.resolve("qemus.raw");
        Dm.run("convert", "-O", "raw", img, ours).ok();
        Qemu.toRaw(img, "vhdx", qemus);
        assertArrayEquals(Files.readAllBytes(qemus), Files.readAllBytes(ours), "guest bytes");

        JsonNode qemuInfo = Qemu.img("info", "--output=json", img).ok().json();
        assertEquals(qemuInfo, Dm.run("info", "--output=json", img).ok().json(), "info");
        assertEquals(Qemu.img("info", img).ok().out(), Dm.run("info", img).ok().out(), "human info");
        Qemu.Result qc = Qemu.check(img, "vhdx");
        Dm.Result dc = Dm.run("check", img);
        assertEquals(qc.exitCode(), dc.exitCode(), dc.err() + dc.out());
        assertEquals(0, dc.exitCode());
        assertEquals(0, Dm.run("compare", qemus, img).exitCode());
        assertEquals(qc.json(), Dm.run("check", "--output=json", img).json(), "check --output=json");
        assertMeasures(img);

        assertHostOffsetsAreTheBats(img);
        assertVhdiinfoAgrees(img, Long.parseLong(size), options.contains("fixed") ? "Fixed" : "Dynamic", 512);
        assertArrayEquals(original, Files.readAllBytes(img), "reading changed nothing");
    }

    /**
     * measure as a source: qemu 7.2 has no block status for VHDX and counts
     * every byte as allocated; diskmorph counts the blocks the BAT holds. Both
     * are bounds of what a copy needs: the fully allocated size is qemu's,
     * and the required size lies between the copy qemu-img convert makes
     * (which skips zeros it reads) and qemu's figure.
     */
    private void assertMeasures(Path img) throws Exception {
        JsonNode q = Qemu.img("measure", "--output=json", "-O", "qcow2", img).ok().json();
        JsonNode d = Dm.run("measure", "--output=json", "-O", "qcow2", img).ok().json();
        assertEquals(q.get("fully-allocated").asLong(), d.get("fully-allocated").asLong(), d.toString());
        Path copy = dir.resolve("copy.qcow2");
        Files.deleteIfExists(copy);
        Qemu.img("convert", "-f", "vhdx", "-O", "qcow2", img, copy).ok();
        long required = d.get("required").asLong();
        assertTrue(required <= q.get("required").asLong() && required >= Files.size(copy),
                "required " + required + ": qemu says " + q.get("required") + ", its copy is " + Files.size(copy));
    }

    /** Every data run of diskmorph's map starts where the BAT says its block lies. */
    static void assertHostOffsetsAreTheBats(Path img) throws Exception {
        assertHostOffsetsAreTheBatsOf(img, VhdxFiles.blockSize(img), 512);
    }

    /** The same for a block size and logical sector size (which set the chunk ratio) the test knows. */
    static void assertHostOffsetsAreTheBatsOf(Path img, long bs, int logicalSector) throws Exception {
        long chunkRatio = (8L << 20) * logicalSector / bs;
        int dataRuns = 0;
        for (Qemu.MapLine l : Dm.map(img, "vhdx")) {
            if (!l.data()) {
                continue;
            }
            dataRuns++;
            for (long g = l.start(); g < l.start() + l.length(); g = (g / bs + 1) * bs) {
                long block = g / bs;
                long entry = VhdxFiles.batEntry(img, block + block / chunkRatio);
                assertEquals(6, entry & 7, "a data run over a fully present block: " + l);
                assertEquals((entry & 0xFFFFFFFFFFF00000L) + g % bs, l.offset() + (g - l.start()),
                        "host offset of guest " + g + " in " + l);
            }
        }
        assertTrue(dataRuns > 0, "the sample has data");
    }

    static void assertVhdiinfoAgrees(Path img, long size, String type, int sector) {
        Qemu.Result r = Qemu.run("vhdiinfo", img.toString());
        assertEquals(0, r.exitCode(), r.err());
        assertTrue(r.out().contains("Disk type\t\t: " + type), r.out());
        assertTrue(r.out().contains("(" + size + " bytes)"), r.out());
        assertTrue(r.out().contains("Bytes per sector\t: " + sector + " bytes"), r.out());
    }

    /**
     * Past the chunk ratio (4,096 blocks of 1 MiB with 512-byte sectors) a
     * sector bitmap entry sits between the payload entries: blocks after it
     * are found one entry further on.
     */
    @Test
    void blocksPastTheFirstChunk() throws Exception {
        Path img = dir.resolve("big.vhdx");
        Qemu.create(img, "vhdx", "9G", "block_size=1M");
        Qemu.io(img, "vhdx", "write -P 0x51 4095M 1M", "write -P 0x52 4096M 64k", "write -P 0x53 8193M 4k");
        assertEquals(0, Dm.run("compare", "-f", "vhdx", "-F", "vhdx", img, img).exitCode());
        Path q = dir.resolve("big.qcow2");
        Qemu.img("convert", "-f", "vhdx", "-O", "qcow2", img, q).ok();
        Dm.Result cmp = Dm.run("compare", "-f", "vhdx", "-F", "qcow2", img, q);
        assertEquals(0, cmp.exitCode(), cmp.out() + cmp.err());
        assertHostOffsetsAreTheBats(img);
        assertEquals(4097, VhdxFiles.payloadIndex(img, 4096), "the test's own index has the bitmap entry");
    }

    /** 4096-byte logical sectors (qemu-img makes 512; the metadata item is set to 4096): same blocks, same bytes. */
    @Test
    void logicalSectorsOf4096() throws Exception {
        Path img = sample("block_size=1M", "6291456");
        Path before = dir.resolve("before.raw");
        Qemu.toRaw(img, "vhdx", before);
        VhdxFiles.putInt(img, VhdxFiles.item(img, VhdxFiles.LOGICAL_SECTOR_GUID), 4096);
        Path ours = dir.resolve("ours.raw");
        Dm.run("convert", "-O", "raw", img, ours).ok();
        assertArrayEquals(Files.readAllBytes(before), Files.readAllBytes(ours));
        assertVhdiinfoAgrees(img, 6291456, "Dynamic", 4096);
        assertEquals(0, Dm.run("check", img).exitCode());
    }

    /** The active header is the valid one with the higher sequence number; a damaged copy is a corruption. */
    @Test
    void headerCopies() throws Exception {
        Path img = sample("block_size=1M", "6291456");
        Path raw = dir.resolve("g.raw");
        Qemu.toRaw(img, "vhdx", raw);
        long seq1 = VhdxFiles.read(img, VhdxFiles.HEADER1 + 8, 8).getLong(0);
        long seq2 = VhdxFiles.read(img, VhdxFiles.HEADER2 + 8, 8).getLong(0);
        long current = seq1 > seq2 ? VhdxFiles.HEADER1 : VhdxFiles.HEADER2;
        // the current header damaged: the other one is read, and check counts the damage
        VhdxFiles.putInt(img, current + 100, 0x12345678);
        assertEquals(0, Dm.run("compare", raw, img).exitCode());
        Dm.Result check = Dm.run("check", img);
        assertEquals(ExitCodes.CHECK_CORRUPT, check.exitCode(), check.err());
        assertTrue(check.err().contains("VHDX header " + (current == VhdxFiles.HEADER1 ? 1 : 2)), check.err());
        byte[] damaged = Files.readAllBytes(img);
        Dm.Result inPlace = Dm.run("convert", "--in-place", "-O", "qcow2", img);
        assertEquals(ExitCodes.CORRUPT, inPlace.exitCode(), "a damaged source is refused: " + inPlace.err());
        assertArrayEquals(damaged, Files.readAllBytes(img), "and left as it was");
        // both damaged: refused
        long other = current == VhdxFiles.HEADER1 ? VhdxFiles.HEADER2 : VhdxFiles.HEADER1;
        VhdxFiles.putInt(img, other + 100, 0x12345678);
        Dm.Result info = Dm.run("info", img);
        assertEquals(ExitCodes.CORRUPT, info.exitCode());
        assertTrue(info.oneLineError().contains("no valid header"), info.err());
        // equal sequence numbers on different headers: which one is current cannot be told
        VhdxFiles.putInt(img, current + 100, 0);
        VhdxFiles.putInt(img, other + 100, 0);
        VhdxFiles.putLong(img, VhdxFiles.HEADER1 + 8, 7);
        VhdxFiles.putLong(img, VhdxFiles.HEADER2 + 8, 7);
        VhdxFiles.putInt(img, VhdxFiles.HEADER2 + 16, 0x5a5a5a5a); // another file write GUID
        VhdxFiles.fixHeaders(img);
        info = Dm.run("info", img);
        assertEquals(ExitCodes.CORRUPT, info.exitCode(), info.err());
        assertTrue(info.oneLineError().contains("same sequence number"), info.err());
    }

    /** Region table 1 damaged: table 2 is read; check reports the damaged copy. */
    @Test
    void regionTableCopies() throws Exception {
        Path img = sample("block_size=1M", "6291456");
        Path raw = dir.resolve("g.raw");
        Qemu.toRaw(img, "vhdx", raw);
        VhdxFiles.putInt(img, VhdxFiles.REGION1 + 4000, 0x77);
        assertEquals(0, Dm.run("compare", raw, img).exitCode());
        Dm.Result check = Dm.run("check", img);
        assertEquals(ExitCodes.CHECK_CORRUPT, check.exitCode());
        assertTrue(check.err().contains("region table 1"), check.err());
        VhdxFiles.putInt(img, VhdxFiles.REGION2 + 4000, 0x77);
        Dm.Result info = Dm.run("info", img);
        assertEquals(ExitCodes.CORRUPT, info.exitCode());
        assertTrue(info.oneLineError().contains("region table"), info.err());
    }

    /** Reads never write: every command leaves a sample byte-identical, and writes are refused by name. */
    @Test
    void writesAreRefused() throws Exception {
        Path img = sample("block_size=1M", "6291456");
        byte[] before = Files.readAllBytes(img);
        for (List<Object> cmd : List.<List<Object>>of(List.of("create", "-f", "vhdx", dir.resolve("n.vhdx"), "1M"),
                List.of("convert", "--in-place", "-f", "raw", "-O", "vhdx", dir.resolve("nothing.raw")),
                List.of("convert", "-O", "vhdx", img, dir.resolve("n.vhdx")),
                List.of("check", "-r", "all", img))) {
            if (cmd.contains(dir.resolve("nothing.raw"))) {
                Files.write(dir.resolve("nothing.raw"), new byte[1 << 20]);
            }
            Dm.Result r = Dm.run(cmd.toArray());
            assertTrue(r.exitCode() != 0, cmd + ": " + r.out());
        }
        assertArrayEquals(before, Files.readAllBytes(img));
        assertTrue(!Files.exists(dir.resolve("n.vhdx")), "no file created");
    }
}
