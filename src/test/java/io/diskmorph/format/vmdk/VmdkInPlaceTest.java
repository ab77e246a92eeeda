package io.diskmorph.format.vmdk;

import com.fasterxml.jackson.databind.JsonNode;
import io.diskmorph.image.ExitCodes;
import io.diskmorph.testing.Dm;
import io.diskmorph.testing.Oracles;
import io.diskmorph.testing.Qemu;
import io.diskmorph.testing.SmallFileSystem;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.MethodSource;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * VMDK as the source of an in-place conversion, judged by qemu-img: single-
 * file sparse VMDKs (qemu-made monolithicSparse with and without zeroed
 * grains, a VirtualBox-style file, a snapshot over its parent) keep every
 * grain at its host offset; streamOptimized moves every grain (they are
 * compressed) and is refused when the free space is short; the result
 * checks clean, compares equal to the original, and --keep-rollback then
 * rollback gives the original file back byte for byte. Descriptor files
 * with extent files, one or several, are refused in one line with every
 * file unchanged.
 */
class VmdkInPlaceTest {
    private static final long SIZE = 40L << 20;

    @TempDir
    Path dir;
    @RegisterExtension
    final SmallFileSystem fs = new SmallFileSystem();

    /** How each source is made in {@code dir} (named NAME.vmdk, with any parent beside it). */
    enum Sample {
        /** qemu-img convert from a raw with data, written zeros and holes. */
        QEMU_SPARSE,
        /** qemu-img create -o zeroed_grain=on, written by qemu-io: zero writes become zeroed grains. */
        QEMU_ZEROED_GRAINS,
        /** Laid out as VirtualBox writes it: grains in write order, not guest order; zeroed grains. */
        VIRTUALBOX,
        /** A snapshot (parentFileNameHint) over a monolithicSparse parent: the parent is the backing file. */
        QEMU_SNAPSHOT,
        /** Deflated grains behind markers: every grain moves. */
        STREAM_OPTIMIZED,
        /** streamOptimized as VMware exports it: tables after the grains, the directory in a footer. */
        VMWARE_STREAM
    }

    static Stream<Arguments> pairs() {
        return Stream.of(Sample.values()).flatMap(s -> Stream.of(Arguments.of(s, "qcow2", ""),
                Arguments.of(s, "qed", "")));
    }

    @ParameterizedTest(name = "{0} -> {1} {2}")
    @MethodSource("pairs")
    void convertsInPlaceAndRollsBack(Sample sample, String target, String options) throws Exception {
        Path img = make(sample, "s");
        Path original = dir.resolve("original.vmdk"); // beside the image: a snapshot's parent resolves the same
        Files.copy(img, original);
        assertConvertsAndRollsBack(img, original, sample.toString(), target, options,
                sample == Sample.STREAM_OPTIMIZED || sample == Sample.VMWARE_STREAM);
    }

    /**
     * Target clusters smaller than the grain keep every grain (each is a run
     * of aligned target clusters); 1 MiB grains that lie at 64 KiB
     * boundaries (VirtualBox aligns the overhead to 64 KiB only) move at the
     * default cluster size, which follows the grain, and stay with
     * cluster_size=64k.
     */
    @ParameterizedTest(name = "grain {0} sectors -> {1} {2}")
    @CsvSource({"128, qcow2, cluster_size=4k", "128, qed, cluster_size=16k", "2048, qcow2, ''",
            "2048, qcow2, cluster_size=64k"})
    void targetClusterSizes(long grainSectors, String target, String options) throws Exception {
        Path img = dir.resolve("g.vmdk");
        Files.write(img, virtualBox(grainSectors, "g.vmdk"));
        Path original = dir.resolve("original.vmdk");
        Files.copy(img, original);
        JsonNode plan = assertConvertsAndRollsBack(img, original, "grain " + grainSectors, target, options,
                grainSectors == 2048 && options.isEmpty());
        if (grainSectors == 2048 && options.isEmpty()) {
            assertEquals(1L << 20, plan.get("cluster-size").asLong(), "the target cluster follows the grain");
            assertTrue(plan.get("moved-by-reason").has("unaligned"), plan.toString());
        }
    }

    /**
     * The conversion and its judges; {@code moves} says whether data may
     * move (else every data byte stays at its host offset). Returns the plan.
     */
    private JsonNode assertConvertsAndRollsBack(Path img, Path original, String what, String target, String options,
                                                boolean moves) throws Exception {
        String sha = VmdkFiles.sha256(img);
        List<String> listing = listing();
        List<Qemu.MapLine> before = Qemu.map(img, "vmdk");
        long data = dataBytes(before);
        assertTrue(data > 0, "the sample has data");

        JsonNode dry = run(img, target, options, "--dry-run").ok().json();
        assertEquals(sha, VmdkFiles.sha256(img), "a dry run leaves the file byte-identical");
        assertEquals(listing, listing(), "a dry run creates no file");
        Dm.Result measured = options.isEmpty()
                ? Dm.run("measure", "--in-place", "--output=json", "-f", "vmdk", "-O", target, img)
                : Dm.run("measure", "--in-place", "--output=json", "-f", "vmdk", "-O", target, "-o", options, img);
        assertEquals(dry.get("extra-space").asLong(), measured.ok().json().get("in-place").get("extra-space")
                .asLong(), "measure --in-place: the plan's extra space");

        JsonNode plan = run(img, target, options, "--keep-rollback").ok().json();
        for (String field : new String[]{"kept-bytes", "moved-bytes", "final-length", "extra-space"}) {
            assertEquals(dry.get(field), plan.get(field), "the dry run predicted " + field);
        }
        assertEquals(data, plan.get("kept-bytes").asLong() + plan.get("moved-bytes").asLong(),
                "every data byte of the source is kept or moved: " + plan);
        if (!moves) {
            // a QED target may hold no free space below its end: data above dead grains or metadata moves down
            long compacted = plan.get("moved-by-reason").path("compacted").asLong(0);
            assertEquals(0, plan.get("moved-bytes").asLong() - compacted, "every grain stays where it is: " + plan);
            assertTrue(compacted == 0 || target.equals("qed"), "only QED compacts: " + plan);
        }
        assertFalse(Files.exists(dir.resolve(img.getFileName() + ".dmjournal")), "journal retired");
        assertTrue(Files.exists(dir.resolve(img.getFileName() + ".dmrollback")), "rollback record kept");

        Oracles.assertCheckClean(img, target);
        Qemu.Result cmp = Qemu.img("compare", "-f", target, "-F", "vmdk", img, original);
        assertEquals(0, cmp.exitCode(), "qemu-img compare with the original: " + cmp.out() + cmp.err());
        JsonNode info = Qemu.img("info", "--output=json", img).ok().json();
        assertEquals(target, info.get("format").asText());
        JsonNode was = Qemu.img("info", "--output=json", original).ok().json();
        assertEquals(was.path("backing-filename").asText(null), info.path("backing-filename").asText(null),
                "the parent is the target's backing file");
        List<Qemu.MapLine> after = Qemu.map(img, target);
        Oracles.assertKeptInPlace(before, after, plan.get("moved-bytes").asLong());
        assertEquals(after, Dm.map(img, target), "diskmorph maps the converted image as qemu does");
        System.out.printf("in place vmdk %s -> %s %s: data %d, kept %d, moved %d %s, metadata %d, file %d -> %d,"
                        + " extra %d bytes%n", what, target, options, data, plan.get("kept-bytes").asLong(),
                plan.get("moved-bytes").asLong(), plan.get("moved-by-reason"), plan.get("metadata-bytes").asLong(),
                plan.get("original-length").asLong(), plan.get("final-length").asLong(),
                plan.get("extra-space").asLong());

        Dm.run("rollback", img).ok();
        assertEquals(VmdkFiles.sha256(original), VmdkFiles.sha256(img), "rollback gives the original VMDK back");
        assertEquals(listing, listing(), "no journal or rollback record left");
        assertEquals(0, Qemu.img("check", img).exitCode(), "qemu-img checks the rolled-back VMDK");
        VmdkFiles.assertVmdkinfoAgrees(img);
        return plan;
    }

    private static Dm.Result run(Path img, String target, String options, String flag) {
        return options.isEmpty()
                ? Dm.run("convert", "--in-place", flag, "--output=json", "-f", "vmdk", "-O", target, img)
                : Dm.run("convert", "--in-place", flag, "--output=json", "-f", "vmdk", "-O", target, "-o", options,
                img);
    }

    /** Guest bytes this layer holds as data (qemu's map: depth 0, data). */
    private static long dataBytes(List<Qemu.MapLine> map) {
        return map.stream().filter(l -> l.depth() == 0 && l.data()).mapToLong(Qemu.MapLine::length).sum();
    }

    private Path make(Sample sample, String name) throws IOException {
        Path img = dir.resolve(name + ".vmdk");
        switch (sample) {
            case QEMU_SPARSE, STREAM_OPTIMIZED -> {
                Path raw = VmdkFiles.sampleRaw(dir, "content.raw", String.valueOf(SIZE), VmdkFiles.sampleWrites(SIZE));
                Qemu.img("convert", "-f", "raw", "-O", "vmdk", "-o", "subformat="
                        + (sample == Sample.QEMU_SPARSE ? "monolithicSparse" : "streamOptimized"), raw, img).ok();
                Files.delete(raw);
                if (sample == Sample.QEMU_SPARSE) {
                    // zeros written over data and over nothing: qemu writes zero grains (no zeroed-grain flag)
                    Qemu.io(img, "vmdk", "write -z 0 64k", "write -z 10M 128k");
                }
            }
            case QEMU_ZEROED_GRAINS -> {
                Qemu.create(img, "vmdk", String.valueOf(SIZE), "zeroed_grain=on");
                Qemu.io(img, "vmdk", VmdkFiles.sampleWrites(SIZE));
                Qemu.io(img, "vmdk", "write -z 0 64k", "write -z 33M 64k");
            }
            case VIRTUALBOX -> Files.write(img, virtualBox(128, img.getFileName().toString()));
            case VMWARE_STREAM -> {
                long capacity = SIZE / VmdkFiles.SECTOR;
                Map<Long, byte[]> grains = new java.util.LinkedHashMap<>();
                for (long g : new long[]{0, 1, 7, 300, 512, capacity / 128 - 1}) {
                    grains.put(g, VmdkFiles.pattern(64 << 10, (int) g + 1));
                }
                Files.write(img, VmdkFiles.vmwareStream(capacity, VmdkFiles.descriptor(0x0bad5eedL, 0xffffffffL,
                        "streamOptimized", null, "RW " + capacity + " SPARSE \"" + img.getFileName() + "\""),
                        grains));
            }
            case QEMU_SNAPSHOT -> {
                Path parent = dir.resolve("parent.vmdk");
                Path raw = VmdkFiles.sampleRaw(dir, "content.raw", String.valueOf(SIZE), VmdkFiles.sampleWrites(SIZE));
                Qemu.img("convert", "-f", "raw", "-O", "vmdk", raw, parent).ok();
                Files.delete(raw);
                Qemu.img("create", "-q", "-f", "vmdk", "-b", parent.getFileName(), "-F", "vmdk", img).ok();
                Qemu.io(img, "vmdk", "write -P 0x66 64k 64k", "write -P 0x67 2M 8k", "write -P 0x68 20M 1M");
            }
        }
        return img;
    }

    /**
     * A hosted sparse file laid out like VirtualBox's: the overhead rounded
     * to 64 KiB, grains where the write order put them (here not in guest
     * order), two zeroed grains, a partial last grain.
     */
    private static byte[] virtualBox(long grainSectors, String name) {
        long capacity = 512 * grainSectors * 3 + 5; // three grain tables, a partial last grain
        VmdkFiles.SparseBuilder b = new VmdkFiles.SparseBuilder(capacity);
        b.grainSectors = grainSectors;
        b.zeroedGrains = true;
        b.descriptor = VmdkFiles.descriptor(0x5eed0001L, 0xffffffffL, "monolithicSparse", null,
                "RW " + capacity + " SPARSE \"" + name + "\"");
        long grains = Math.ceilDiv(capacity, grainSectors);
        int bytes = (int) (grainSectors * VmdkFiles.SECTOR);
        long[] order = {grains - 1, 700, 0, 1, 2, 511, 512, 513, 1030, 40};
        for (int i = 0; i < order.length; i++) {
            b.grains.put(order[i], VmdkFiles.pattern(bytes, i + 1));
        }
        b.grains.put(5L, null);
        b.grains.put(grains - 2, null);
        return b.build();
    }

    private List<String> listing() throws IOException {
        try (var files = Files.list(dir)) {
            return files.map(p -> p.getFileName().toString()).sorted().toList();
        }
    }

    private Map<String, String> shaOfEveryFile() throws Exception {
        Map<String, String> m = new TreeMap<>();
        try (var files = Files.list(dir)) {
            for (Path p : files.toList()) {
                m.put(p.getFileName().toString(), VmdkFiles.sha256(p));
            }
        }
        return m;
    }

    // ---- refusals -------------------------------------------------------------------------

    /**
     * A descriptor whose data lives in sparse extent files, or in several: the
     * run, the dry run and measure --in-place refuse it in one line (exit
     * 66) naming what it is, and no file changes or appears.
     */
    @ParameterizedTest
    // a descriptor with one flat extent converts (VmdkFlatInPlaceTest); sparse extent files do not
    @CsvSource({"twoGbMaxExtentSparse, 40M, descriptor-based", "twoGbMaxExtentSparse, 5G, multi-extent"})
    void descriptorsWithExtentFilesAreRefused(String createType, String size, String why) throws Exception {
        Path img;
        if (createType.equals("vmfs")) {
            Path raw = VmdkFiles.sampleRaw(dir, "esxi.raw", "4M", "write -P 9 64k 1M");
            img = VmdkFiles.esxiPair(dir, "esxi", raw, 0x5f3a9c21L);
            Files.delete(raw);
        } else {
            img = dir.resolve("d.vmdk");
            Qemu.create(img, "vmdk", size, "subformat=" + createType);
            Qemu.io(img, "vmdk", "write -P 0x11 0 64k", "write -P 0x22 1M 64k");
        }
        Map<String, String> before = shaOfEveryFile();
        for (Object[] cmd : new Object[][]{{"convert", "--in-place", "-O", "qcow2", img},
                {"convert", "--in-place", "--dry-run", "-O", "qed", img},
                {"convert", "--in-place", "-f", "vmdk", "--keep-rollback", "-O", "qed", img},
                {"measure", "--in-place", "-O", "qcow2", img}}) {
            Dm.Result r = Dm.run(cmd);
            assertEquals(ExitCodes.UNSUPPORTED, r.exitCode(), r.err());
            String line = r.oneLineError();
            assertTrue(line.contains(why + " VMDK images") && line.contains("in place is not supported yet")
                    && line.contains(createType), line);
            assertEquals(before, shaOfEveryFile(), "every file as it was, none added: " + line);
        }
    }

    /**
     * A damaged source is refused before anything is written (exit 65), the
     * file unchanged: a grain past the end of the file (qemu's check finds
     * it), and two guest grains on one host grain (which check does not look
     * for, but the survey, which places every cluster, does).
     */
    @ParameterizedTest
    @CsvSource({"grain past the end, 100000", "two grains on one, 128"})
    void damagedSourcesAreRefused(String what, long sector) throws Exception {
        Path img = dir.resolve("c.vmdk");
        Qemu.create(img, "vmdk", "64M");
        Qemu.io(img, "vmdk", "write -P 1 0 128k", "write -P 2 40M 64k");
        for (long directory : new long[]{VmdkFiles.u64(img, 48), VmdkFiles.u64(img, 56)}) {
            long table = VmdkFiles.u32(img, directory * VmdkFiles.SECTOR);
            VmdkFiles.putU32(img, table * VmdkFiles.SECTOR + 4, sector); // the second grain
        }
        String sha = VmdkFiles.sha256(img);
        for (String target : new String[]{"qcow2", "qed"}) {
            Dm.Result r = Dm.run("convert", "--in-place", "-O", target, img);
            assertEquals(ExitCodes.CORRUPT, r.exitCode(), what + ": " + r.err());
            r.oneLineError();
            assertEquals(sha, VmdkFiles.sha256(img), what);
            assertEquals(List.of("c.vmdk"), listing(), what + ": no journal");
        }
    }

    /**
     * A snapshot whose parent was written since (the parent's CID is not the
     * snapshot's parentCID) reads nothing through it, in qemu as here; in
     * place it is refused the same way (exit 65, every file unchanged), where
     * the target would read the changed parent as its backing file.
     */
    @Test
    void snapshotOfAChangedParentIsRefused() throws Exception {
        Path img = make(Sample.QEMU_SNAPSHOT, "child");
        Path parent = dir.resolve("parent.vmdk");
        String text = Files.readString(parent, java.nio.charset.StandardCharsets.ISO_8859_1);
        int at = text.indexOf("\nCID=") + 5;
        int end = text.indexOf('\n', at);
        String other = text.substring(at, end).equals("12345678") ? "87654321" : "12345678";
        Files.writeString(parent, text.substring(0, at) + other + text.substring(end),
                java.nio.charset.StandardCharsets.ISO_8859_1);
        Map<String, String> before = shaOfEveryFile();
        for (String target : new String[]{"qcow2", "qed"}) {
            Dm.Result r = Dm.run("convert", "--in-place", "-O", target, img);
            assertEquals(ExitCodes.CORRUPT, r.exitCode(), r.err());
            assertTrue(r.oneLineError().contains("parentCID") && r.err().contains(other), r.err());
            assertEquals(before, shaOfEveryFile(), "every file as it was, none added");
        }
    }

    /**
     * streamOptimized moves every grain, decompressed: the plan's extra
     * space covers it, and a file system with less free space refuses the
     * dry run and the run alike (exit 68) with the file unchanged; with the
     * room it converts.
     */
    @Test
    void streamOptimizedNeedsTheRoomItsPlanAnnounces() throws Exception {
        Path mount = fs.mount(dir, "16M");
        Path raw = VmdkFiles.sampleRaw(dir, "content.raw", "16M", "write -P 0x11 0 6M", "write -P 0x22 9M 2M");
        Path img = mount.resolve("stream.vmdk");
        Qemu.img("convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized", raw, img).ok();
        long extra = run(img, "qcow2", "", "--dry-run").ok().json().get("extra-space").asLong();
        assertTrue(extra > Files.size(img) + (7L << 20), "the plan counts the decompressed grains: " + extra);
        long free = Files.getFileStore(mount).getUsableSpace();
        Qemu.run("fallocate", "-l", String.valueOf(free - extra + (64 << 10)), mount.resolve("filler").toString())
                .ok();
        String sha = VmdkFiles.sha256(img);

        Dm.Result dry = Dm.run("convert", "--in-place", "--dry-run", "-O", "qcow2", img);
        assertEquals(ExitCodes.NO_SPACE, dry.exitCode(), dry.out() + dry.err());
        Dm.Result r = Dm.run("convert", "--in-place", "-O", "qcow2", img);
        assertEquals(ExitCodes.NO_SPACE, r.exitCode(), r.err());
        assertTrue(r.oneLineError().contains("not enough free space"), r.err());
        assertEquals(sha, VmdkFiles.sha256(img));
        assertFalse(Files.exists(mount.resolve("stream.vmdk.dmjournal")));

        Files.delete(mount.resolve("filler"));
        JsonNode plan = Dm.run("convert", "--in-place", "--output=json", "-O", "qcow2", img).ok().json();
        assertEquals(0, plan.get("kept-bytes").asLong());
        assertEquals(8L << 20, plan.get("moved-by-reason").get("compressed").asLong(), plan.toString());
        Oracles.assertCheckClean(img, "qcow2");
        assertEquals(0, Qemu.img("compare", "-f", "qcow2", "-F", "raw", img, raw).exitCode());
    }
}
