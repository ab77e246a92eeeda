package io.diskmorph.format.vdi;

import com.fasterxml.jackson.databind.JsonNode;
import io.diskmorph.testing.Dm;
import io.diskmorph.testing.Oracles;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * VDIs laid out as VirtualBox lays them out (map and data at 1 MiB
 * boundaries, blocks out of guest order, discarded blocks, an odd disk size
 * as VBoxManage convertfromraw writes) and as qemu-img creates them: read,
 * mapped and described as qemu-img 7.2 does; and create lays a file out
 * byte for byte as qemu-img create does (UUIDs aside).
 */
class VdiReadTest {
    @TempDir
    Path dir;

    @Test
    void virtualBoxLayoutReadsAsQemuReadsIt() throws Exception {
        Path img = dir.resolve("vbox.vdi");
        long size = 6L * VdiFiles.MIB + 512;
        // guest 0 -> host 1, 1 unallocated, 2 -> host 0, 3 discarded, 4 -> 2, 5 -> 3, 6 (the partial last) -> 4
        VdiFiles.virtualBox(img, size, Map.of(0L, 1L, 2L, 0L, 3L, -2L, 4L, 2L, 5L, 3L, 6L, 4L),
                g -> VdiFiles.pattern(VdiFiles.MIB, g));
        assertEquals(2L * VdiFiles.MIB, VdiFiles.u32(img, 0x158), "data area at 2 MiB, as VirtualBox puts it");
        VdiFiles.assertReadsLikeQemu(img, dir);
        Oracles.assertCheckClean(img, "vdi");
        assertEquals(0, Dm.run("check", img).exitCode());
        // guest blocks 4-6 follow each other on the host at 2 MiB + 2 MiB: one map extent, as qemu merges it
        assertTrue(Qemu.map(img, "vdi").stream().anyMatch(l -> l.start() == 4L * VdiFiles.MIB
                && l.length() == 2L * VdiFiles.MIB + 512 && l.offset() == 4L * VdiFiles.MIB), "map");
    }

    /** VBoxManage convertfromraw writes sizes that are no sector multiple: qemu rounds them up, and so do we. */
    @Test
    void oddDiskSizeRoundsUpToASector() throws Exception {
        Path img = dir.resolve("odd.vdi");
        VdiFiles.virtualBox(img, 3L * VdiFiles.MIB - 1000, Map.of(2L, 0L), g -> VdiFiles.pattern(VdiFiles.MIB, 9));
        VdiFiles.assertReadsLikeQemu(img, dir);
        assertEquals(3L * VdiFiles.MIB - 512, Dm.run("info", "--output=json", img).ok().json().get("virtual-size")
                .asLong());
    }

    /** qemu-made images, written by qemu-io: blocks in allocation order, data 512-aligned. */
    @Test
    void qemuMadeImagesReadAsQemuReadsThem() throws Exception {
        Path img = dir.resolve("q.vdi");
        Qemu.create(img, "vdi", "9M");
        Qemu.io(img, "vdi", "write -P 7 5M 4k", "write -P 8 0 1M", "write -P 9 1536k 1k", "write -z 8M 1M");
        VdiFiles.assertReadsLikeQemu(img, dir);
        Path fixed = dir.resolve("s.vdi");
        Qemu.create(fixed, "vdi", "3M", "static=on");
        Qemu.io(fixed, "vdi", "write -P 7 1M 8k");
        VdiFiles.assertReadsLikeQemu(fixed, dir);
        Dm.Result compare = Dm.run("compare", img, fixed);
        assertEquals(Qemu.img("compare", img, fixed).exitCode(), compare.exitCode(), compare.out() + compare.err());
    }

    /** measure with a VDI source: qemu-img's figures, for a VirtualBox layout, a qemu-made and a static image. */
    @Test
    void measureAsASourceEqualsQemus() throws Exception {
        Path vbox = dir.resolve("vbox.vdi");
        VdiFiles.virtualBox(vbox, 6L * VdiFiles.MIB + 512, Map.of(0L, 1L, 2L, 0L, 3L, -2L, 6L, 2L),
                g -> VdiFiles.pattern(VdiFiles.MIB, g));
        Path dyn = dir.resolve("q.vdi");
        Qemu.create(dyn, "vdi", "9M");
        Qemu.io(dyn, "vdi", "write -P 7 5M 4k", "write -z 8M 1M");
        Path fixed = dir.resolve("s.vdi");
        Qemu.create(fixed, "vdi", "3M", "static=on");
        Qemu.io(fixed, "vdi", "write -P 7 1M 8k");
        for (Path img : new Path[]{vbox, dyn, fixed}) {
            for (String target : new String[]{"qcow2", "raw"}) {
                assertEquals(Qemu.img("measure", "--output=json", "-f", "vdi", "-O", target, img).ok().json(),
                        Dm.run("measure", "--output=json", "-f", "vdi", "-O", target, img).ok().json(),
                        "measure -O " + target + " " + img.getFileName());
            }
        }
    }

    /**
     * measure -O vdi (qemu-img 7.2 has none): the file sizes a copy and create then write, for an empty disk,
     * a static one, and a raw source with data in 3 of its 6 blocks and a partial last block.
     */
    @Test
    void measureForAVdiTarget() throws Exception {
        JsonNode empty = Dm.run("measure", "--output=json", "-O", "vdi", "--size", "1G").ok().json();
        assertEquals(512 + 4096, empty.get("required").asLong());
        assertEquals(512 + 4096 + (1L << 30), empty.get("fully-allocated").asLong());
        JsonNode fixed = Dm.run("measure", "--output=json", "-O", "vdi", "-o", "static=on", "--size", "1G").ok().json();
        assertEquals(512 + 4096 + (1L << 30), fixed.get("required").asLong());
        Path raw = dir.resolve("m.raw");
        Qemu.create(raw, "raw", String.valueOf(5L * VdiFiles.MIB + 512));
        Qemu.io(raw, "raw", "write -P 1 0 4k", "write -P 2 2M 1M", "write -P 3 5M 512");
        JsonNode m = Dm.run("measure", "--output=json", "-f", "raw", "-O", "vdi", raw).ok().json();
        Path copy = dir.resolve("m.vdi");
        Dm.run("convert", "-f", "raw", "-O", "vdi", raw, copy).ok();
        assertEquals(Files.size(copy), m.get("required").asLong(), "what the copy wrote");
        assertEquals(512 + 512 + 6L * VdiFiles.MIB, m.get("fully-allocated").asLong());
        Path q = dir.resolve("q.vdi");
        Qemu.img("convert", "-f", "raw", "-O", "vdi", raw, q).ok();
        assertEquals(Files.size(q), Files.size(copy), "qemu-img convert writes as much");
    }

    /** create writes what qemu-img create writes, byte for byte but the two random UUIDs. */
    @ParameterizedTest
    @CsvSource({"5M, ''", "1000, ''", "0, ''", "3145216, static=on", "64M, static=on", "300G, ''"})
    void createLaysOutAsQemuImgCreate(String size, String options) throws Exception {
        Path q = dir.resolve("q.vdi");
        Path d = dir.resolve("d.vdi");
        if (options.isEmpty()) {
            Qemu.create(q, "vdi", size);
            Dm.run("create", "-q", "-f", "vdi", d, size).ok();
        } else {
            Qemu.create(q, "vdi", size, options);
            Dm.run("create", "-q", "-f", "vdi", "-o", options, d, size).ok();
        }
        byte[] a = Files.readAllBytes(q);
        byte[] b = Files.readAllBytes(d);
        assertEquals(a.length, b.length, "file length");
        Arrays.fill(a, 0x188, 0x1a8, (byte) 0);
        Arrays.fill(b, 0x188, 0x1a8, (byte) 0);
        assertArrayEquals(a, b, "the file but its UUIDs");
        Oracles.assertCheckClean(d, "vdi");
        assertEquals(Qemu.map(q, "vdi"), Dm.map(d, "vdi"), "map");
    }

    @Test
    void createRefusesWhatQemuCannotExpressOrWeDoNotWrite() throws Exception {
        for (String[] o : new String[][]{{"preallocation=full"}, {"cluster_size=2M"}, {"static=maybe"}}) {
            Path d = dir.resolve("x.vdi");
            Dm.Result r = Dm.run("create", "-q", "-f", "vdi", "-o", o[0], d, "4M");
            assertTrue(r.exitCode() == 64 || r.exitCode() == 66, o[0] + ": " + r.exitCode() + " " + r.err());
            r.oneLineError();
            assertTrue(!Files.exists(d), o[0] + ": no file left");
        }
        Dm.Result big = Dm.run("create", "-q", "-f", "vdi", dir.resolve("big.vdi"), "1025T");
        assertEquals(66, big.exitCode(), big.err());
        assertTrue(big.oneLineError().contains("Unsupported VDI image size"), big.err());
        Qemu.create(dir.resolve("base.raw"), "raw", "4M");
        Dm.Result backing = Dm.run("create", "-q", "-f", "vdi", "-b", "base.raw", "-F", "raw",
                dir.resolve("b.vdi"), "4M");
        assertEquals(66, backing.exitCode(), backing.err());
    }
}
