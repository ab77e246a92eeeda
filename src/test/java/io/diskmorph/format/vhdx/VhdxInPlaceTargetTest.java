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
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * raw, qcow2 and QED converted in place to VHDX (KVM to Hyper-V): qemu-img
 * check clean and compare identical, vhdiinfo reads the result, the BAT
 * (read by the test itself, since qemu-img cannot map VHDX) names the host
 * offsets the data had, and rollback gives the original file back byte for
 * byte.
 */
class VhdxInPlaceTargetTest {
    private static final long MIB = 1L << 20;

    @TempDir
    Path dir;

    private Dm.Result convert(Path img, String from, String options, String... extra) {
        List<Object> args = new ArrayList<>(List.of("convert", "--in-place", "--output=json", "-f", from, "-O", "vhdx"));
        if (!options.isEmpty()) {
            args.addAll(List.of("-o", options));
        }
        args.addAll(Arrays.asList(extra));
        args.add(img);
        return Dm.run(args.toArray());
    }

    /**
     * Each source, its writes, the target block size expected; the MiBs of
     * the data that may move (the header section's: the first MiB of the
     * file, where raw and qcow2/QED headers lie).
     */
    @ParameterizedTest(name = "{0} {1} -> vhdx {2}")
    @CsvSource(delimiter = '|', value = {
            "raw   | ''                  | ''              | 1048576 | true",
            "raw   | ''                  | block_size=4M   | 4194304 | true",
            "qcow2 | cluster_size=1M     | ''              | 1048576 | true",
            "qcow2 | cluster_size=2M     | ''              | 2097152 | true",
            "qed   | cluster_size=1M     | ''              | 1048576 | true",
            // qemu's 64 KiB clusters follow its metadata: no MiB of them lies MiB-aligned, all of it moves
            "qcow2 | cluster_size=64k    | ''              | 1048576 | false"})
    void convertsInPlaceKeepsBlocksAndRollsBack(String from, String create, String options, long blockSize,
                                                boolean keeps) throws Exception {
        Path img = dir.resolve("s." + from);
        long size = 24 * MIB + 512 * 3;
        if (create.isEmpty()) {
            Qemu.create(img, from, String.valueOf(size));
        } else {
            Qemu.create(img, from, String.valueOf(size), create);
        }
        Qemu.io(img, from, "write -P 0x11 0 64k", "write -P 0x22 1500k 3M", "write -z 6M 1M",
                "write -P 0x33 9M 4M", "write -P 0x44 " + (size - 3000) + " 3000");
        Path original = dir.resolve("original");
        Files.copy(img, original);
        Path guest = dir.resolve("guest.raw");
        Qemu.toRaw(img, from, guest);
        List<Qemu.MapLine> before = Dm.map(img, from);

        JsonNode plan = convert(img, from, options, "--keep-rollback").ok().json();
        assertEquals(0, Qemu.check(img, "vhdx").exitCode(), "qemu-img check");
        assertEquals(0, Qemu.img("compare", "-f", "vhdx", "-F", "raw", img, guest).exitCode(), "qemu-img compare");
        assertEquals("vhdx", Qemu.img("info", "--output=json", img).ok().json().get("format").asText());
        Qemu.Result vhdi = Qemu.run("vhdiinfo", img.toString());
        assertEquals(0, vhdi.exitCode(), vhdi.out() + vhdi.err());
        assertEquals(blockSize, VhdxFiles.blockSize(img), "the block size");
        VhdxReadTest.assertHostOffsetsAreTheBats(img);

        // every target block whose data lay whole, contiguous and MiB-aligned past the header section stays
        // (raw: every block but the first, at its guest offset)
        long kept = 0;
        for (long block = 0; block * blockSize < size; block++) {
            long g = block * blockSize;
            long len = Math.min(blockSize, size - g);
            long host = from.equals("raw") ? g : contiguousHost(before, g, len);
            long entry = VhdxFiles.batEntry(img, VhdxFiles.payloadIndex(img, block));
            boolean hasData = before.stream().anyMatch(l -> l.data() && l.start() < g + len
                    && l.start() + l.length() > g);
            if (hasData && host >= MIB && host % MIB == 0) {
                assertEquals(6, entry & 7, "block " + block + " is fully present");
                assertEquals(host, entry & ~0xFFFFFL, "block " + block + " stays at " + host);
                kept += len;
            }
        }
        assertEquals(keeps, kept > 0, "data stays: " + plan);
        assertTrue(plan.get("kept-bytes").asLong() >= kept, "the plan counts what stays: " + plan);
        if (from.equals("raw")) {
            assertEquals(blockSize, plan.get("moved-bytes").asLong(), "raw: only the first block moves: " + plan);
        }
        System.out.printf("in place %s %s -> vhdx %s: kept %d, moved %d %s, file %d -> %d, extra %d%n", from, create,
                options, plan.get("kept-bytes").asLong(), plan.get("moved-bytes").asLong(),
                plan.get("moved-by-reason"), plan.get("original-length").asLong(), plan.get("final-length").asLong(),
                plan.get("extra-space").asLong());

        Dm.run("rollback", img).ok();
        assertArrayEquals(Files.readAllBytes(original), Files.readAllBytes(img), "rollback: the original file");
        assertEquals(0, Qemu.img("compare", "-f", from, "-F", "raw", img, guest).exitCode());
    }

    /** The host offset of guest [g, g+len) when the source holds it as one data run, else -1. */
    private static long contiguousHost(List<Qemu.MapLine> map, long g, long len) {
        long host = -1;
        for (Qemu.MapLine l : map) {
            if (l.start() + l.length() <= g || l.start() >= g + len) {
                continue;
            }
            if (!l.data() || l.offset() < 0) {
                return -1;
            }
            long h = l.offset() + (Math.max(g, l.start()) - l.start()) - (Math.max(g, l.start()) - g);
            if (host >= 0 && h != host) {
                return -1;
            }
            host = h;
            if (l.start() > g && host < 0) {
                return -1;
            }
        }
        long covered = 0;
        for (Qemu.MapLine l : map) {
            long a = Math.max(g, l.start());
            long b = Math.min(g + len, l.start() + l.length());
            if (a < b && l.data()) {
                covered += b - a;
            }
        }
        return covered == len ? host : -1;
    }

    /** Options that cannot apply in place are refused in one line, the file byte-identical. */
    @Test
    void refusedOptions() throws Exception {
        Path img = dir.resolve("r.raw");
        Files.write(img, new byte[4 << 20]);
        byte[] before = Files.readAllBytes(img);
        for (String o : new String[]{"subformat=fixed", "block_state_zero=off", "block_size=3M", "log_size=x"}) {
            Dm.Result r = convert(img, "raw", o);
            assertEquals(ExitCodes.USAGE, r.exitCode(), o + ": " + r.err());
            assertArrayEquals(before, Files.readAllBytes(img), o);
        }
    }
}
