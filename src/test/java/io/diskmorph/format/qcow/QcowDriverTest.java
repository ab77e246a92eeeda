package io.diskmorph.format.qcow;

import io.diskmorph.image.DiskImage;
import io.diskmorph.image.ExitCodes;
import io.diskmorph.image.Images;
import io.diskmorph.image.OpenOptions;
import io.diskmorph.testing.Dm;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * What the conformance suite does not cover: create byte for byte as
 * qemu-img 7.2, writes laid out as qemu lays them out, measure against
 * the real size of a copy, the own check, encrypted images, info.
 */
class QcowDriverTest {
    @TempDir
    Path dir;

    /** create writes what qemu-img create writes, byte for byte (qcow's mtime field stays 0 in both). */
    @ParameterizedTest(name = "{0} {1}")
    @CsvSource({"10M, ''", "1000, ''", "4T, ''", "10M, backing", "3G, backing"})
    void createIsQemuImgCreate(String size, String backing) throws Exception {
        Path base = dir.resolve("base.raw");
        Qemu.create(base, "raw", "64M");
        Path ours = dir.resolve("ours.qcow");
        Path theirs = dir.resolve("theirs.qcow");
        if (backing.isEmpty()) {
            Dm.run("create", "-q", "-f", "qcow", ours, size).ok();
            Qemu.img("create", "-q", "-f", "qcow", theirs, size).ok();
        } else {
            Dm.run("create", "-q", "-f", "qcow", "-b", "base.raw", "-F", "raw", ours, size).ok();
            Qemu.img("create", "-q", "-f", "qcow", "-b", "base.raw", "-F", "raw", theirs, size).ok();
        }
        assertArrayEquals(Files.readAllBytes(theirs), Files.readAllBytes(ours));
        assertEquals(Qemu.img("info", "--output=json", theirs).ok().json().get("cluster-size"),
                Dm.run("info", "--output=json", ours).ok().json().get("cluster-size"));
    }

    /** Options qcow refuses, before IMAGE exists: encryption, size 0, an unknown option. */
    @ParameterizedTest(name = "{3}")
    @CsvSource(delimiter = '|', value = {
            "encryption=on | 1M | 66 | encrypted qcow images are not supported",
            "encrypt.format=aes | 1M | 66 | encrypted qcow images are not supported",
            "cluster_size=64k | 1M | 64 | cluster_size",
            "'' | 0 | 64 | cannot be zero length"})
    void createRefusals(String options, String size, int code, String fragment) {
        Path img = dir.resolve("r.qcow");
        Dm.Result r = options.isEmpty() ? Dm.run("create", "-f", "qcow", img, size)
                : Dm.run("create", "-f", "qcow", "-o", options, img, size);
        assertEquals(code, r.exitCode(), r.err());
        assertTrue(r.oneLineError().contains(fragment), r.err());
        assertFalse(Files.exists(img), "a refused create left a file");
    }

    /**
     * The same writes through diskmorph and through qemu-io give the same
     * file, byte for byte, whenever they cover whole clusters (qemu
     * allocates as diskmorph does: an L2 table, then data, at the end of the
     * file rounded up to a cluster); partial clusters keep what was there.
     */
    @Test
    void writesLayOutAsQemuDoes() throws Exception {
        Path ours = dir.resolve("w.qcow");
        Path theirs = dir.resolve("q.qcow");
        Qemu.create(ours, "qcow", "8M");
        Qemu.create(theirs, "qcow", "8M");
        long[][] writes = {{0, 65536}, {3 << 20, 8192}, {7 << 20, 4096}, {4096, 4096}, {2 << 20, 1 << 20}};
        String[] cmds = new String[writes.length];
        try (DiskImage img = Images.open(ours, OpenOptions.forWriting().withFormat("qcow"))) {
            for (int i = 0; i < writes.length; i++) {
                byte[] data = new byte[(int) writes[i][1]];
                java.util.Arrays.fill(data, (byte) (i + 1));
                img.write(ByteBuffer.wrap(data), writes[i][0]);
                cmds[i] = "write -P " + (i + 1) + " " + writes[i][0] + " " + writes[i][1];
            }
        }
        Qemu.io(theirs, "qcow", cmds);
        assertArrayEquals(Files.readAllBytes(theirs), Files.readAllBytes(ours));

        // a partial write into a new cluster over a backing file keeps the backing bytes around it
        Path base = dir.resolve("b.raw");
        Qemu.create(base, "raw", "1M");
        Qemu.io(base, "raw", "write -P 0x66 0 1M");
        Path over = dir.resolve("over.qcow");
        Dm.run("create", "-q", "-f", "qcow", "-o", "backing_file=b.raw,backing_fmt=raw", over, "1M").ok();
        try (DiskImage img = Images.open(over, OpenOptions.forWriting().withFormat("qcow"))) {
            img.write(ByteBuffer.wrap(new byte[]{1, 2, 3}), 1000);
        }
        Path guest = dir.resolve("over.raw");
        Qemu.toRaw(over, "qcow", guest);
        byte[] g = Files.readAllBytes(guest);
        assertEquals(0x66, g[999]);
        assertEquals(1, g[1000]);
        assertEquals(0x66, g[1003]);
        assertEquals(0x66, g[511]);
    }

    /** measure's required size is the length of the copy convert writes; fully allocated is a full copy's. */
    @Test
    void measureIsTheSizeOfACopy() throws Exception {
        Path raw = dir.resolve("m.raw");
        Qemu.create(raw, "raw", "9M");
        Qemu.io(raw, "raw", "write -P 7 0 100k", "write -P 9 3M 1M", "write -P 3 9215k 1k");
        Path copy = dir.resolve("m.qcow");
        Dm.run("convert", "-O", "qcow", raw, copy).ok();
        assertEquals(0, Qemu.compare(raw, copy));
        var m = Dm.run("measure", "--output=json", "-O", "qcow", raw).ok().json();
        assertEquals(Files.size(copy), m.get("required").asLong());
        Path full = dir.resolve("full.raw");
        Qemu.create(full, "raw", "9M");
        Qemu.io(full, "raw", "write -P 1 0 9M");
        Path fullCopy = dir.resolve("full.qcow");
        Dm.run("convert", "-O", "qcow", full, fullCopy).ok();
        assertEquals(Files.size(fullCopy), m.get("fully-allocated").asLong());
        Qemu.img("convert", "-O", "qcow", raw, dir.resolve("q.qcow")).ok();
        assertEquals(Files.size(dir.resolve("q.qcow")), m.get("required").asLong(), "qemu-img's copy too");
        var empty = Dm.run("measure", "--output=json", "-O", "qcow", "--size", "10M").ok().json();
        Path created = dir.resolve("e.qcow");
        Qemu.create(created, "qcow", "10M");
        assertEquals(Files.size(created), empty.get("required").asLong());
    }

    /** qemu-img has no qcow check; ours is clean on qemu's images and finds damaged tables (exit 2). */
    @Test
    void checkFindsDamage() throws Exception {
        Path img = dir.resolve("c.qcow");
        Qemu.create(img, "qcow", "8M");
        Qemu.io(img, "qcow", "write -P 1 0 64k", "write -P 2 5M 8k");
        assertEquals(63, Qemu.check(img, "qcow").exitCode(), "qemu-img 7.2 has no qcow check");
        Dm.Result clean = Dm.run("check", "--output=json", img).ok();
        assertEquals(18, clean.json().get("allocated-clusters").asLong());
        assertEquals(ExitCodes.CHECK_UNSUPPORTED, Dm.run("check", "-r", "all", img).exitCode());
        long l2 = QcowFiles.getU64(img, 48);
        assertEquals(4096, l2);
        // the second cluster's entry onto the first's: two guest clusters share one host cluster
        QcowFiles.put(img, l2 + 8, 8, QcowFiles.getU64(img, l2));
        Dm.Result r = Dm.run("check", img);
        assertEquals(ExitCodes.CHECK_CORRUPT, r.exitCode(), r.out() + r.err());
        assertTrue(r.err().contains("overlaps"), r.err());
        // a misaligned entry and one past the end
        QcowFiles.put(img, l2 + 16, 8, 8192 + 100);
        QcowFiles.put(img, l2 + 24, 8, 1L << 40);
        r = Dm.run("check", img);
        assertEquals(ExitCodes.CHECK_CORRUPT, r.exitCode());
        assertTrue(r.err().contains("not sector aligned") && r.err().contains("past the end"), r.err());
    }

    /** An AES-encrypted image qemu-img makes is refused in one line by every command, the file unchanged. */
    @Test
    void encryptedImagesAreRefused() throws Exception {
        Path img = dir.resolve("e.qcow");
        Qemu.img("create", "-q", "--object", "secret,id=s0,data=password", "-f", "qcow", "-o",
                "encrypt.format=aes,encrypt.key-secret=s0", img, "4M").ok();
        String before = QcowFiles.sha256(img);
        for (Object[] cmd : new Object[][]{{"info", img}, {"map", img}, {"convert", "-O", "raw", img,
                dir.resolve("o.raw")}, {"convert", "--in-place", "-O", "qcow2", img}}) {
            Dm.Result r = Dm.run(cmd);
            assertEquals(ExitCodes.UNSUPPORTED, r.exitCode(), r.err());
            assertTrue(r.oneLineError().contains("encrypted qcow images (AES"), r.err());
        }
        assertEquals(before, QcowFiles.sha256(img));
        assertFalse(Files.exists(dir.resolve("o.raw")));
    }

    /**
     * convert -c -O qcow: clusters deflated where they shrink, each stream at
     * the end of the file rounded up to a sector, as qemu-img's; on simple
     * data (the same deflate output) the file is qemu-img's byte for byte up
     * to qemu's last byte (qemu 7.2 fails its closing sector alignment and
     * exits 1; diskmorph's file ends on a sector). On mixed data the guest
     * and map equal qemu's, and the clusters that did not shrink are plain.
     */
    @Test
    void compressedCopiesAsQemuImg() throws Exception {
        Path raw = dir.resolve("p.raw");
        Qemu.create(raw, "raw", "6M");
        Qemu.io(raw, "raw", "write -P 7 0 100k", "write -P 9 3M 1M", "write -P 3 6143k 1k");
        Path ours = dir.resolve("ours.qcow");
        Path theirs = dir.resolve("theirs.qcow");
        Dm.run("convert", "-c", "-O", "qcow", raw, ours).ok();
        assertEquals(1, Qemu.img("convert", "-c", "-O", "qcow", raw, theirs).exitCode(), "qemu-img 7.2's quirk");
        byte[] q = Files.readAllBytes(theirs);
        byte[] d = Files.readAllBytes(ours);
        assertEquals((q.length + 511) / 512 * 512, d.length);
        assertArrayEquals(q, java.util.Arrays.copyOf(d, q.length));
        assertEquals(0, Qemu.compare(raw, ours));

        byte[] mixed = new byte[4 << 20];
        Random rnd = new Random(3);
        rnd.nextBytes(mixed);
        for (int i = 0; i < 3 << 20; i += 3) {
            mixed[i] = 0; // compressible in the first 3 MiB, random after
        }
        Files.write(raw, mixed);
        Dm.run("convert", "-c", "-O", "qcow", raw, dir.resolve("m.qcow")).ok();
        assertEquals(0, Qemu.compare(raw, dir.resolve("m.qcow")));
        assertEquals(Qemu.map(dir.resolve("m.qcow"), "qcow"), Dm.map(dir.resolve("m.qcow"), "qcow"));
        var check = Dm.run("check", "--output=json", dir.resolve("m.qcow")).ok().json();
        assertEquals(768, check.get("compressed-clusters").asLong(), check.toString());
        assertEquals(1024, check.get("allocated-clusters").asLong(), check.toString());
    }

    /**
     * A chain qcow over qcow over raw reads as qemu reads it (qcow stores no
     * backing format: each layer is probed); a backing file that fails to
     * open stays failed (BackingFailureTest's rule), and info still works.
     */
    @Test
    void backingChains() throws Exception {
        Path base = dir.resolve("base.raw");
        Qemu.create(base, "raw", "2M");
        Qemu.io(base, "raw", "write -P 0x61 0 2M");
        Path mid = dir.resolve("mid.qcow");
        Qemu.img("create", "-q", "-f", "qcow", "-b", "base.raw", "-F", "raw", mid, "3M").ok();
        Qemu.io(mid, "qcow", "write -P 0x62 512k 1k", "write -P 0x63 2M 4k");
        Path top = dir.resolve("top.qcow");
        Dm.run("create", "-q", "-f", "qcow", "-b", "mid.qcow", "-F", "qcow", top, "3M").ok();
        try (DiskImage img = Images.open(top, OpenOptions.forWriting())) {
            img.write(ByteBuffer.wrap(new byte[]{9, 9, 9}), 513 * 1024 + 100);
        }
        Path want = dir.resolve("want.raw");
        Qemu.toRaw(top, "qcow", want);
        Path got = dir.resolve("got.raw");
        Dm.run("convert", "-O", "raw", top, got).ok();
        assertArrayEquals(Files.readAllBytes(want), Files.readAllBytes(got));
        assertEquals(Qemu.map(top, "qcow"), Dm.map(top, "qcow"));
        assertEquals(Qemu.img("info", "--backing-chain", top).ok().out(),
                Dm.run("info", "--backing-chain", top).ok().out().replace("diskmorph", "qemu-img"));

        Files.delete(dir.resolve("mid.qcow"));
        try (DiskImage img = Images.open(top, OpenOptions.forReading())) {
            org.junit.jupiter.api.Assertions.assertThrows(java.nio.file.NoSuchFileException.class,
                    () -> img.read(ByteBuffer.allocate(4096), 0));
            org.junit.jupiter.api.Assertions.assertThrows(java.nio.file.NoSuchFileException.class,
                    () -> img.read(ByteBuffer.allocate(4096), 0), "second read");
        }
        assertEquals(0, Dm.run("info", top).exitCode());
        assertTrue(Dm.run("map", top).exitCode() != 0, "map cannot show the missing layer");
    }

    /** layout names qcow's metadata: the header, the backing file name, the L1 table, each L2 table. */
    @Test
    void layoutNamesTheTables() throws Exception {
        Path img = dir.resolve("l.qcow");
        Qemu.create(img, "qcow", "10M");
        Qemu.io(img, "qcow", "write -P 1 0 64k", "write -P 2 5M 4k", "write -P 3 9M 4k");
        var bytes = Dm.run("layout", "--output=json", img).ok().json().get("bytes");
        assertEquals(48, bytes.get("header").asLong());
        assertEquals(40, bytes.get("L1 table").asLong()); // five entries of 2 MiB each
        assertEquals(3 * 4096, bytes.get("L2 tables").asLong());
        assertEquals(18 * 4096, bytes.get("guest data").asLong());
        Path base = dir.resolve("base.raw");
        Qemu.create(base, "raw", "10M");
        Path over = dir.resolve("o.qcow");
        Qemu.create(over, "qcow", "10M", "backing_file=base.raw", "backing_fmt=raw");
        assertEquals(8, Dm.run("layout", "--output=json", over).ok().json().get("bytes").get("backing file name")
                .asLong());
    }

    /** Random writes over a compressed image (whole and partial clusters) read back as a mirror says. */
    @Test
    void writesOverCompressedClusters() throws Exception {
        Path raw = dir.resolve("src.raw");
        Qemu.create(raw, "raw", "2M");
        byte[] mirror = new byte[2 << 20];
        new Random(5).nextBytes(mirror);
        for (int i = 0; i < mirror.length; i += 7) {
            mirror[i] = 0; // compressible
        }
        Files.write(raw, mirror);
        Path img = dir.resolve("z.qcow");
        Qemu.img("convert", "-c", "-f", "raw", "-O", "qcow", raw, img); // exits 1 after a complete image
        assertEquals(0, Qemu.compare(raw, img));
        Random rnd = new Random(9);
        try (DiskImage d = Images.open(img, OpenOptions.forWriting().withFormat("qcow"))) {
            for (int i = 0; i < 40; i++) {
                int at = rnd.nextInt(mirror.length - 9000);
                int n = 1 + rnd.nextInt(9000);
                byte[] data = new byte[n];
                rnd.nextBytes(data);
                d.write(ByteBuffer.wrap(data), at);
                System.arraycopy(data, 0, mirror, at, n);
            }
        }
        Files.write(raw, mirror);
        assertEquals(0, Qemu.compare(raw, img));
        assertEquals(0, Dm.run("check", img).exitCode());
    }
}
