package io.diskmorph.format.vmdk;

import io.diskmorph.image.ExitCodes;
import io.diskmorph.testing.Dm;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Hostile descriptors and headers: every command says what is wrong in one
 * line with a documented exit code (info, map, convert: 65 corrupt, 66
 * unsupported, 1 missing file; check: 1; compare: 2), in bounded time and
 * memory, and no file changes.
 */
class VmdkHostileTest {
    /** Allocation one command may make on a hostile image (the fuzz harness's base bound). */
    private static final long ALLOCATION_BOUND = 64L << 20;

    @TempDir
    Path dir;

    private Path descriptorFile(String name, String text) throws Exception {
        Path p = dir.resolve(name);
        Files.writeString(p, text);
        return p;
    }

    private Path flat(String name, int bytes) throws Exception {
        Path p = dir.resolve(name);
        Files.write(p, VmdkFiles.pattern(bytes, 3));
        return p;
    }

    private static String desc(String createType, String... lines) {
        return VmdkFiles.descriptor(0x1234L, 0xffffffffL, createType, null, lines);
    }

    /** Hashes of every file in the directory. */
    private Map<String, String> hashes() throws Exception {
        Map<String, String> m = new TreeMap<>();
        try (var files = Files.list(dir)) {
            for (Path p : files.toList()) {
                if (Files.isRegularFile(p)) {
                    m.put(p.getFileName().toString(), VmdkFiles.sha256(p));
                }
            }
        }
        return m;
    }

    private static long allocated() {
        return ((com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean()).getCurrentThreadAllocatedBytes();
    }

    /** Every command refuses {@code img} with {@code code} and a line containing {@code fragment}. */
    private void refused(Path img, int code, String fragment) throws Exception {
        Map<String, String> before = hashes();
        Path out = dir.resolve("out.raw");
        List<String> problems = new ArrayList<>();
        assertTimeoutPreemptively(Duration.ofSeconds(20), () -> {
            for (Object[] cmd : new Object[][]{{"info", img}, {"map", "--output=json", img}, {"check", img},
                    {"compare", img, img}, {"convert", "-O", "raw", img, out}}) {
                long start = allocated();
                Dm.Result r = Dm.run(cmd);
                long used = allocated() - start;
                String what = cmd[0] + ": ";
                int expected = cmd[0].equals("check") ? ExitCodes.CHECK_FAILED
                        : cmd[0].equals("compare") ? ExitCodes.COMPARE_ERROR : code;
                if (r.exitCode() != expected) {
                    problems.add(what + "exit " + r.exitCode() + " (expected " + expected + "): " + r.err());
                }
                String line = r.oneLineError();
                if (!line.contains(fragment)) {
                    problems.add(what + "'" + line + "' does not say '" + fragment + "'");
                }
                if (used > ALLOCATION_BOUND) {
                    problems.add(what + "allocated " + used + " bytes");
                }
            }
        });
        assertTrue(problems.isEmpty(), String.join("\n", problems));
        assertTrue(!Files.exists(out), "a refused copy left its target");
        assertEquals(before, hashes(), "a refusal changed a file");
    }

    // ---- descriptors ----------------------------------------------------------------------

    @Test
    void hugeDescriptorFile() throws Exception {
        StringBuilder b = new StringBuilder(desc("monolithicFlat", "RW 8 FLAT \"f.bin\" 0"));
        while (b.length() <= 2 << 20) {
            b.append("# padding padding padding padding padding padding padding padding\n");
        }
        flat("f.bin", 4096);
        refused(descriptorFile("huge.vmdk", b.toString()), ExitCodes.CORRUPT, "under 1 MiB");
    }

    @Test
    void binaryAfterTheVersionLine() throws Exception {
        byte[] junk = VmdkFiles.pattern(64 << 10, 9);
        byte[] head = "version=1\n".getBytes(StandardCharsets.US_ASCII);
        System.arraycopy(head, 0, junk, 0, head.length);
        Path p = dir.resolve("bin.vmdk");
        Files.write(p, junk);
        refused(p, ExitCodes.CORRUPT, "createType");
    }

    @Test
    void tooManyExtents() throws Exception {
        flat("f.bin", 512 * 5000);
        String[] lines = new String[5000];
        for (int i = 0; i < lines.length; i++) {
            lines[i] = "RW 1 FLAT \"f.bin\" " + i;
        }
        refused(descriptorFile("many.vmdk", desc("monolithicFlat", lines)), ExitCodes.UNSUPPORTED, "4096 extents");
    }

    /** Thousands of extents within the limit: they open (one file, opened once) and map quickly. */
    @Test
    void thousandsOfExtentsOfOneFileOpenQuickly() throws Exception {
        flat("f.bin", 512 * 4000);
        String[] lines = new String[4000];
        for (int i = 0; i < lines.length; i++) {
            lines[i] = "RW 1 FLAT \"f.bin\" " + (3999 - i); // backwards: nothing merges
        }
        Path img = descriptorFile("thousands.vmdk", desc("monolithicFlat", lines));
        // diskmorph's own open and map are timed; qemu-img's runs (the oracle, seconds under load) are not
        assertTimeoutPreemptively(Duration.ofSeconds(20), () -> Dm.run("map", "--output=json", img).ok());
        assertTimeoutPreemptively(Duration.ofSeconds(120), () -> {
            VmdkFiles.assertSameMap(img);
            VmdkFiles.assertSameGuestBytes(img, dir);
        });
    }

    @ParameterizedTest
    @CsvSource(delimiter = '|', value = {
            "RW 16 FLAT \"f.bin\" 0;RW 16 FLAT \"f.bin\" 8| extents overlap",
            "RW 16 FLAT \"f.bin\" 0;RW 16 FLAT \"./f.bin\" 15| extents overlap",
            "RW 16 FLAT \"f.bin\" 0;RW 16 FLAT \"link.bin\" 4| extents overlap",
            "RW 16 FLAT \"d.vmdk\" 0| descriptor itself",
            "RW 16 FLAT \"missing.bin\" 0| extent file not found",
            "RW 16 FLAT \"f.bin\"| without a start sector",
            "RW 16 VMFS \"f.bin\" 0| has no start sector",
            "RW 16 SPARSE \"s.vmdk\" 3| has no start sector",
            "RW 16 FLAT f.bin 0| double quotes",
            "RW 16 FLAT \"f.bin 0| unterminated",
            "RW x FLAT \"f.bin\" 0| size in sectors",
            "RW 99999999999999999999 FLAT \"f.bin\" 0| size in sectors",
            "RW 16 FLAT \"f.bin\" 18014398509481983| past 2^63",
            "RW 18014398509481983 FLAT \"f.bin\" 0;RW 18014398509481983 FLAT \"g.bin\" 0| past 2^63",
            "RW 0 FLAT \"f.bin\" 0| every extent is empty"})
    void malformedExtentLines(String lines, String fragment) throws Exception {
        flat("f.bin", 8192);
        flat("g.bin", 8192);
        Files.createSymbolicLink(dir.resolve("link.bin"), dir.resolve("f.bin"));
        int code = fragment.contains("not found") ? ExitCodes.ERROR : ExitCodes.CORRUPT;
        refused(descriptorFile("d.vmdk", desc("monolithicFlat", lines.split(";"))), code, fragment);
    }

    /** A sparse file in two extents would be read twice: refused. */
    @Test
    void sparseFileInTwoExtents() throws Exception {
        Qemu.create(dir.resolve("s.vmdk"), "vmdk", "1M");
        refused(descriptorFile("d.vmdk", desc("twoGbMaxExtentSparse", "RW 2048 SPARSE \"s.vmdk\"",
                "RW 2048 SPARSE \"s.vmdk\"")), ExitCodes.CORRUPT, "extents overlap");
    }

    @ParameterizedTest
    @CsvSource(delimiter = '|', value = {
            "RW 16 FLAT \"/etc/passwd\" 0| absolute path",
            "RW 16 FLAT \"../f.bin\" 0| leaves the directory",
            "RW 16 FLAT \"sub/../../f.bin\" 0| leaves the directory",
            "RW 16 FLAT \"nbd:localhost:10809\" 0| protocol",
            "RW 16 FLAT \"file:f.bin\" 0| protocol",
            "NOACCESS 16 FLAT \"f.bin\" 0| NOACCESS",
            "RW 16 VMFSRDM \"f.bin\"| raw device mapping",
            "RW 16 FROB \"f.bin\"| FROB"})
    void unsupportedExtentLines(String line, String fragment) throws Exception {
        flat("f.bin", 8192);
        refused(descriptorFile("d.vmdk", desc("monolithicFlat", line)), ExitCodes.UNSUPPORTED, fragment);
    }

    @ParameterizedTest
    @CsvSource(delimiter = '|', value = {
            "fullDevice| physical disk",
            "vmfsRDM| physical disk",
            "custom| not supported",
            "monolithicSparse| not supported"})
    void unsupportedCreateTypes(String createType, String fragment) throws Exception {
        flat("f.bin", 8192);
        refused(descriptorFile("d.vmdk", desc(createType, "RW 16 FLAT \"f.bin\" 0")), ExitCodes.UNSUPPORTED,
                fragment);
    }

    @ParameterizedTest
    @CsvSource(delimiter = '|', value = {
            "CID=zz| CID",
            "CID=123456789| CID",
            "parentCID=-1| parentCID"})
    void badContentIds(String line, String fragment) throws Exception {
        flat("f.bin", 8192);
        String text = desc("monolithicFlat", "RW 16 FLAT \"f.bin\" 0").replaceFirst(line.substring(0,
                line.indexOf('=') + 1) + "[0-9a-f]+", line);
        refused(descriptorFile("d.vmdk", text), ExitCodes.CORRUPT, fragment);
    }

    @Test
    void missingLines() throws Exception {
        flat("f.bin", 8192);
        String full = desc("monolithicFlat", "RW 16 FLAT \"f.bin\" 0");
        refused(descriptorFile("a.vmdk", full.replaceFirst("\nCID=[0-9a-f]+", "")), ExitCodes.CORRUPT, "no CID");
        refused(descriptorFile("b.vmdk", full.replaceFirst("createType=\"monolithicFlat\"", "")), ExitCodes.CORRUPT,
                "createType");
        refused(descriptorFile("c.vmdk", full.replace("RW 16 FLAT \"f.bin\" 0", "")), ExitCodes.CORRUPT,
                "no extent lines");
    }

    /** A descriptor whose extents are fine but whose file is named with -f raw is read as raw, as asked. */
    @Test
    void rawStillReadsTheBytes() throws Exception {
        flat("f.bin", 8192);
        Path d = descriptorFile("d.vmdk", desc("monolithicFlat", "RW 16 FLAT \"f.bin\" 0"));
        assertEquals("raw", Dm.run("info", "-f", "raw", "--output=json", d).ok().json().get("format").asText());
    }

    // ---- sparse headers -------------------------------------------------------------------

    /** A valid VirtualBox-style sparse file with data, patched by each case. */
    private Path sparse() throws Exception {
        VmdkFiles.SparseBuilder b = new VmdkFiles.SparseBuilder(4096);
        b.descriptor = desc("monolithicSparse", "RW 4096 SPARSE \"h.vmdk\"");
        b.grains.put(1L, VmdkFiles.pattern(65536, 1));
        Path p = dir.resolve("h.vmdk");
        Files.write(p, b.build());
        return p;
    }

    @ParameterizedTest
    @CsvSource(delimiter = '|', value = {
            "4|32|4| 66| version 4",
            "44|32|0| 65| 0 entries",
            "44|32|1024| 65| 1024 entries",
            "20|64|0| 65| grains of 0",
            "20|64|2097153| 65| grains of 2097153",
            "12|64|4611686018427387904| 65| capacity",
            "12|64|18014398509481983| 65| grain directory of",
            "64|64|100000| 65| file truncated",
            "56|64|0| 65| no grain directory",
            "56|64|-1| 65| footer",
            "56|64|36028797018963968| 65| out of range",
            "28|64|0| 65| no embedded descriptor"})
    void hostileHeaders(int field, int bits, long value, int code, String fragment) throws Exception {
        Path p = sparse();
        if (bits == 32) {
            VmdkFiles.putU32(p, field, value);
        } else {
            VmdkFiles.putU64(p, field, value);
        }
        refused(p, code, fragment);
    }

    @Test
    void unknownCompressionAlgorithm() throws Exception {
        Path p = sparse();
        VmdkFiles.write(p, 77, new byte[]{2, 0});
        refused(p, ExitCodes.UNSUPPORTED, "compression algorithm 2");
    }

    @Test
    void hugeCompressedGrains() throws Exception {
        Path p = sparse();
        VmdkFiles.write(p, 77, new byte[]{1, 0});
        VmdkFiles.putU64(p, 20, 8192); // 4 MiB grains
        refused(p, ExitCodes.UNSUPPORTED, "compressed grains of");
    }

    @Test
    void esxSparseOnItsOwn() throws Exception {
        Path p = dir.resolve("delta.vmdk");
        Files.write(p, VmdkFiles.cowd(2048, 1, Map.of(0L, VmdkFiles.pattern(512, 1))));
        refused(p, ExitCodes.UNSUPPORTED, "COWD");
    }

    /** A sparse extent that is itself a descriptor in a sparse header (capacity 0): nesting is refused. */
    @Test
    void nestedDescriptor() throws Exception {
        Path inner = sparse();
        VmdkFiles.putU64(inner, 12, 0);
        refused(descriptorFile("outer.vmdk", desc("twoGbMaxExtentSparse", "RW 4096 SPARSE \"h.vmdk\"")),
                ExitCodes.UNSUPPORTED, "nested");
    }

    /**
     * What qemu reads without complaint stays readable: a grain table far
     * past the end of the file (reads zeros), a grain directory of qemu's
     * maximum size that lies past the end (an unallocated petabyte disk).
     */
    @Test
    void farOffsetsReadZerosInBoundedTime() throws Exception {
        Path p = sparse();
        long gd = VmdkFiles.u64(p, 56);
        VmdkFiles.putU32(p, gd * 512, 0xfffffff0L);
        assertTimeoutPreemptively(Duration.ofSeconds(20), () -> {
            VmdkFiles.assertSameInfo(p);
            VmdkFiles.assertSameMap(p);
            VmdkFiles.assertSameGuestBytes(p, dir);
        });
        assertEquals(0, Qemu.img("check", p).exitCode(), "qemu's check misses a table past the end");
        assertEquals(ExitCodes.CHECK_CORRUPT, Dm.run("check", p).exitCode());
        Path big = sparse();
        VmdkFiles.putU64(big, 12, (32L << 20) * 512 * 128); // 32 Mi grain tables: 1 PiB
        VmdkFiles.putU64(big, 56, 1L << 40); // the directory, past the end
        assertTimeoutPreemptively(Duration.ofSeconds(30), () -> {
            long start = allocated();
            Dm.Result r = Dm.run("map", "--output=json", big);
            assertEquals(0, r.exitCode(), r.err());
            assertTrue(allocated() - start < ALLOCATION_BOUND, "map allocated " + (allocated() - start));
            // qemu answers one grain at a time here (2^34 answers): not asked
            assertEquals(List.of(new Qemu.MapLine(0, 1L << 50, 0, false, true, false, -1)), Dm.map(big, null));
            start = allocated();
            assertEquals(ExitCodes.CHECK_CORRUPT, Dm.run("check", big).exitCode()); // its directory is past the end
            assertTrue(allocated() - start < ALLOCATION_BOUND, "check allocated " + (allocated() - start));
        });
    }

    /** A corrupt compressed grain: map works (it reads no data), reads fail in one line, as in qemu. */
    @Test
    void corruptCompressedGrain() throws Exception {
        Path p = dir.resolve("s.vmdk");
        Path raw = VmdkFiles.sampleRaw(dir, "r.raw", "1M", "write -P 5 0 128k");
        Qemu.img("convert", "-O", "vmdk", "-o", "subformat=streamOptimized", raw, p).ok();
        long gd = VmdkFiles.u64(p, 56); // qemu writes the directory near the start, not in a footer
        long gt = VmdkFiles.u32(p, gd * 512);
        long grain = VmdkFiles.u32(p, gt * 512);
        VmdkFiles.write(p, grain * 512 + 12, new byte[]{1, 2, 3, 4, 5, 6, 7, 8});
        VmdkFiles.assertSameMap(p);
        assertTrue(Qemu.img("convert", "-O", "raw", p, dir.resolve("q.raw")).exitCode() != 0);
        Dm.Result r = Dm.run("convert", "-O", "raw", p, dir.resolve("d.raw"));
        assertEquals(ExitCodes.CORRUPT, r.exitCode(), r.err());
        assertTrue(r.oneLineError().contains("compressed grain"), r.err());
    }
}
