package io.diskmorph.format.vmdk;

import io.diskmorph.testing.Dm;
import io.diskmorph.testing.Oracles;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.TreeSet;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * create and copy conversion to VMDK against qemu-img 7.2: the files
 * diskmorph creates are qemu-img's byte for byte but for the random CID
 * (headers, descriptor text, directories, file names and sizes), read like
 * qemu-img reads them and by vmdkinfo; copies into every subformat compare
 * equal to their source, check clean and map like qemu maps them;
 * streamOptimized output is VMware's stream layout.
 */
class VmdkCreateTest {
    @TempDir
    static Path shared;
    @TempDir
    Path dir;

    static Path sample;
    static final long SIZE = 40L << 20;

    @BeforeAll
    static void sample() {
        sample = VmdkFiles.sampleRaw(shared, "sample.raw", String.valueOf(SIZE), VmdkFiles.sampleWrites(SIZE));
    }

    @ParameterizedTest
    @CsvSource(delimiter = '|', value = {
            "|100M",
            "zeroed_grain=on|100M",
            "adapter_type=lsilogic,hwversion=6|1G",
            "adapter_type=buslogic,compat6=on|64M",
            "adapter_type=legacyESX,toolsversion=12345|64M",
            "subformat=monolithicFlat|5M",
            "subformat=twoGbMaxExtentSparse|3G",
            "subformat=twoGbMaxExtentSparse,zeroed_grain=on|2G",
            "subformat=twoGbMaxExtentFlat|2049M",
            "|1536"})
    void createWritesWhatQemuImgWrites(String options, String size) throws Exception {
        Path q = Files.createDirectories(dir.resolve("q")).resolve("disk.vmdk");
        Path d = Files.createDirectories(dir.resolve("d")).resolve("disk.vmdk");
        List<Object> qa = new ArrayList<>(List.of("create", "-q", "-f", "vmdk"));
        List<Object> da = new ArrayList<>(List.of("create", "-q", "-f", "vmdk"));
        if (options != null) {
            qa.addAll(List.of("-o", options));
            da.addAll(List.of("-o", options));
        }
        qa.addAll(List.of(q, size));
        da.addAll(List.of(d, size));
        Qemu.img(qa.toArray()).ok();
        Dm.run(da.toArray()).ok();
        assertSameFilesButCid(q.getParent(), d.getParent());
        Oracles.assertCheckClean(d, "vmdk");
        VmdkFiles.assertReadsLikeQemu(d, dir);
    }

    /** A snapshot: parentCID is the parent's CID, parentFileNameHint its name as given; a parent not VMDK is refused. */
    @Test
    void createWithBackingFile() throws Exception {
        Path q = Files.createDirectories(dir.resolve("q"));
        Path d = Files.createDirectories(dir.resolve("d"));
        Qemu.create(q.resolve("base.vmdk"), "vmdk", "8M");
        Qemu.io(q.resolve("base.vmdk"), "vmdk", "write -P 0x42 0 1M");
        Files.copy(q.resolve("base.vmdk"), d.resolve("base.vmdk"));
        Qemu.img("create", "-q", "-f", "vmdk", "-b", "base.vmdk", "-F", "vmdk", q.resolve("top.vmdk")).ok();
        Dm.run("create", "-q", "-f", "vmdk", "-b", "base.vmdk", "-F", "vmdk", d.resolve("top.vmdk")).ok();
        assertSameFilesButCid(q, d);
        Oracles.assertCheckClean(d.resolve("top.vmdk"), "vmdk");
        VmdkFiles.assertReadsLikeQemu(d.resolve("top.vmdk"), dir);
        Qemu.create(d.resolve("raw.img"), "raw", "8M");
        Dm.Result r = Dm.run("create", "-f", "vmdk", "-b", "raw.img", "-F", "raw", d.resolve("bad.vmdk"));
        assertNotEquals(0, r.exitCode());
        r.oneLineError();
        assertTrue(!Files.exists(d.resolve("bad.vmdk")));
    }

    /** convert -O vmdk into every subformat: equal to the source, clean, mapped like qemu maps it, vmdkinfo reads it. */
    @ParameterizedTest
    @CsvSource({"monolithicSparse", "monolithicFlat", "twoGbMaxExtentSparse", "twoGbMaxExtentFlat", "streamOptimized"})
    void copiesIntoEverySubformat(String subformat) throws Exception {
        Path d = dir.resolve("copy.vmdk");
        Dm.run("convert", "-O", "vmdk", "-o", "subformat=" + subformat, sample, d).ok();
        Qemu.Result cmp = Qemu.img("compare", "-F", "vmdk", "-f", "raw", sample, d);
        assertEquals(0, cmp.exitCode(), cmp.out() + cmp.err());
        Oracles.assertCheckClean(d, "vmdk");
        VmdkFiles.assertReadsLikeQemu(d, dir);
        try (Stream<Path> s = Files.list(dir)) {
            assertTrue(s.noneMatch(p -> p.getFileName().toString().contains(".part")), "no part file left");
        }
    }

    /**
     * convert -B: only what differs from the VMDK parent is copied (into
     * monolithicSparse, where the map is qemu-img's for the same copy, and
     * into streamOptimized, whose written zeros are stored so the parent does
     * not show through).
     */
    @Test
    void copiesOverAParent() throws Exception {
        Path base = dir.resolve("base.vmdk");
        Qemu.create(base, "vmdk", "8M");
        Qemu.io(base, "vmdk", "write -P 1 0 4M");
        Path top = dir.resolve("top.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", "-b", "base.vmdk", "-F", "vmdk", top).ok();
        Qemu.io(top, "qcow2", "write -P 2 1M 64k", "write -z 2M 64k", "write -P 3 3M 1000");
        Path q = dir.resolve("q.vmdk");
        Qemu.img("convert", "-O", "vmdk", "-B", "base.vmdk", "-F", "vmdk", top, q).ok();
        for (String subformat : List.of("monolithicSparse", "streamOptimized")) {
            Path d = dir.resolve(subformat + ".vmdk");
            Dm.run("convert", "-O", "vmdk", "-o", "subformat=" + subformat, "-B", "base.vmdk", "-F", "vmdk", top, d)
                    .ok();
            assertEquals(0, Qemu.compare(top, d), subformat);
            Oracles.assertCheckClean(d, "vmdk");
            if (subformat.equals("monolithicSparse")) {
                assertEquals(Qemu.map(q, "vmdk"), Qemu.map(d, "vmdk"), "the map of qemu-img's copy");
            }
            VmdkFiles.assertReadsLikeQemu(d, dir);
        }
    }

    /**
     * A copy publishes its descriptor by a rename when complete, but writes
     * extent files under their final names: one that exists already (the
     * data of the image being replaced) is refused, not overwritten.
     */
    @Test
    void copyRefusesToOverwriteExtentFiles() throws Exception {
        Path d = dir.resolve("old.vmdk");
        Qemu.img("create", "-q", "-f", "vmdk", "-o", "subformat=monolithicFlat", d, "1M").ok();
        Qemu.io(d, "vmdk", "write -P 0x61 0 1M");
        String flat = VmdkFiles.sha256(dir.resolve("old-flat.vmdk"));
        String desc = VmdkFiles.sha256(d);
        Dm.Result r = Dm.run("convert", "-O", "vmdk", "-o", "subformat=monolithicFlat", sample, d);
        assertNotEquals(0, r.exitCode());
        assertTrue(r.oneLineError().contains("old-flat.vmdk exists"), r.err());
        assertEquals(flat, VmdkFiles.sha256(dir.resolve("old-flat.vmdk")));
        assertEquals(desc, VmdkFiles.sha256(d));
        try (Stream<Path> s = Files.list(dir)) {
            assertEquals(List.of("old-flat.vmdk", "old.vmdk"), s.map(p -> p.getFileName().toString()).sorted()
                    .toList());
        }
    }

    /**
     * streamOptimized: version 3, compressed grains behind markers, the
     * directory at the end (the header says so, the footer says where), the
     * end-of-stream marker last; smaller than qemu-img's for the same data
     * (no preallocated tables), and the same guest bytes.
     */
    @Test
    void streamOptimizedIsTheStreamLayout() throws Exception {
        Path d = dir.resolve("s.vmdk");
        Dm.run("convert", "-O", "vmdk", "-o", "subformat=streamOptimized", sample, d).ok();
        assertEquals(3, VmdkFiles.u32(d, 4), "version 3");
        assertEquals(0x30001, VmdkFiles.u32(d, 8), "flags: newline test, compressed, markers");
        assertEquals(-1L, VmdkFiles.u64(d, 56), "directory at the end");
        long size = Files.size(d);
        assertEquals(0, size % 512);
        assertEquals(3, VmdkFiles.u32(d, size - 1536 + 12), "footer marker");
        assertEquals(0x4b444d56L, Long.reverseBytes(VmdkFiles.u32(d, size - 1024)) >>> 32, "footer header");
        long gd = VmdkFiles.u64(d, size - 1024 + 56);
        assertEquals(2, VmdkFiles.u32(d, (gd - 1) * 512 + 12), "grain directory marker before the directory");
        assertArrayEquals(new byte[512], java.util.Arrays.copyOfRange(Files.readAllBytes(d), (int) size - 512,
                (int) size), "end-of-stream marker");
        Path q = dir.resolve("q.vmdk");
        Qemu.img("convert", "-O", "vmdk", "-o", "subformat=streamOptimized", sample, q).ok();
        assertTrue(size < Files.size(q), size + " vs qemu-img's " + Files.size(q));
        assertEquals(0, Qemu.compare(d, q));
        Path raw = dir.resolve("back.raw");
        Dm.run("convert", "-O", "raw", d, raw).ok();
        assertEquals(-1, Files.mismatch(raw, sample));
    }

    /**
     * A streamOptimized image is written in guest order: a write before a
     * grain already started is refused in one line, and what was written
     * before still makes a finished, readable stream.
     */
    @Test
    void streamOptimizedRefusesWritesOutOfOrder() throws Exception {
        Path p = dir.resolve("order.vmdk");
        try (var file = io.diskmorph.storage.FileStorage.create(p, io.diskmorph.storage.LockMode.EXCLUSIVE);
             var img = new VmdkFormat().create(file, new io.diskmorph.image.CreateSpec(4L << 20,
                     java.util.Map.of("subformat", "streamOptimized"), null, null),
                     new io.diskmorph.image.OpenContext(p, false, null, false))) {
            img.write(java.nio.ByteBuffer.wrap(VmdkFiles.pattern(70_000, 5)), 1 << 20);
            var e = org.junit.jupiter.api.Assertions.assertThrows(io.diskmorph.image.ImageException.class,
                    () -> img.write(java.nio.ByteBuffer.wrap(new byte[512]), 0));
            assertEquals(1, e.getMessage().lines().count(), e.getMessage());
        }
        Oracles.assertCheckClean(p, "vmdk");
        Path expected = dir.resolve("expected.raw");
        byte[] guest = new byte[4 << 20];
        System.arraycopy(VmdkFiles.pattern(70_000, 5), 0, guest, 1 << 20, 70_000);
        Files.write(expected, guest);
        assertEquals(0, Qemu.img("compare", "-f", "vmdk", "-F", "raw", p, expected).exitCode());
    }

    /** -o help lists qemu-img's VMDK options (less the file protocol's: extent_size_hint, nocow, preallocation). */
    @Test
    void optionHelpListsQemusOptions() {
        TreeSet<String> ours = names(Dm.run("create", "-f", "vmdk", "-o", "help").ok().out());
        TreeSet<String> qemu = names(Qemu.img("create", "-f", "vmdk", "-o", "help").ok().out());
        qemu.removeAll(List.of("extent_size_hint", "nocow", "preallocation", "size"));
        assertEquals(qemu, ours);
    }

    private static TreeSet<String> names(String help) {
        TreeSet<String> names = new TreeSet<>();
        for (String line : help.split("\n")) {
            String t = line.strip();
            int end = t.indexOf(' ');
            if (line.startsWith("  ") && end > 0) {
                String n = t.substring(0, end);
                names.add(n.contains("=") ? n.substring(0, n.indexOf('=')) : n);
            }
        }
        return names;
    }

    /** The same file names and sizes; contents equal once the CID lines (random) are masked. */
    private static void assertSameFilesButCid(Path q, Path d) throws IOException {
        List<String> qn;
        List<String> dn;
        try (Stream<Path> a = Files.list(q); Stream<Path> b = Files.list(d)) {
            qn = a.map(p -> p.getFileName().toString()).sorted().toList();
            dn = b.map(p -> p.getFileName().toString()).sorted().toList();
        }
        assertEquals(qn, dn, "file names");
        for (String n : qn) {
            Path a = q.resolve(n);
            Path b = d.resolve(n);
            if (Files.size(a) > 64 << 20) {
                assertEquals(Files.size(a), Files.size(b), n + " size");
                continue; // a flat extent: holes only
            }
            if (Files.size(a) > 4096) { // not a descriptor file, whose CID has 1 to 8 digits
                assertEquals(Files.size(a), Files.size(b), n + " size");
            }
            assertEquals(maskCid(Files.readAllBytes(a)), maskCid(Files.readAllBytes(b)), n);
        }
    }

    /**
     * The file as text with "CID=<hex>" lines as "CID=?" and runs of zero
     * bytes as one (a shorter CID leaves one more zero of padding after the
     * descriptor; offsets are compared through the header and directory
     * entries, which hold them).
     */
    private static String maskCid(byte[] file) {
        String s = new String(file, java.nio.charset.StandardCharsets.ISO_8859_1);
        return s.replaceAll("(?m)^CID=[0-9a-f]+\n", "CID=?\n").replaceAll("\u0000+", "\u0000");
    }
}
