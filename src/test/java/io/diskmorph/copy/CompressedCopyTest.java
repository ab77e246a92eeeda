package io.diskmorph.copy;

import com.fasterxml.jackson.databind.JsonNode;
import io.diskmorph.testing.Dm;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

/**
 * convert -c: compressed clusters read back by qemu-img (compare, check with
 * no leaks or corruption: the packed streams' shared clusters are counted
 * right), compressed where qemu-img compresses and stored plainly where its
 * deflate or zstd output would not fit in a cluster.
 */
class CompressedCopyTest {
    @TempDir
    Path dir;

    /** Compressible patterns, incompressible random data, zeros inside data, a partial last cluster. */
    private Path source(String size) throws Exception {
        Path src = dir.resolve("src-" + size + ".raw");
        Qemu.create(src, "raw", size);
        Qemu.io(src, "raw", "write -P 0x11 0 300k", "write -P 0 64k 64k", "write -P 0x22 1M 4k",
                "write -P 0x33 2M 1M");
        byte[] random = new byte[256 * 1024];
        new Random(7).nextBytes(random);
        Path r = dir.resolve("random");
        Files.write(r, random);
        Qemu.run("dd", "if=" + r, "of=" + src, "bs=64k", "seek=64", "conv=notrunc", "status=none").ok();
        return src;
    }

    @Test
    void zlibAndZstdMatchQemu() throws Exception {
        Path src = source("5M");
        Path zlib = CopyOracle.convertBoth(dir, src, "raw", "qcow2", "zlib", "-c");
        Path zstd = CopyOracle.convertBoth(dir, src, "raw", "qcow2", "zstd", "-c", "-o", "compression_type=zstd");
        assertEquals("zstd", Qemu.img("info", "--output=json", zstd).ok().json()
                .at("/format-specific/data/compression-type").asText());
        for (Path p : new Path[]{zlib, zstd}) {
            String check = Qemu.img("check", p).ok().out();
            assertTrue(check.contains("compressed clusters"), check);
            assertFalse(check.contains(" 0.00% compressed"), "nothing was compressed: " + check);
        }
        // deflate with qemu's parameters gives qemu's streams: same sizes, same packing
        assertEquals(Files.size(dir.resolve("zlib.qemu.qcow2")), Files.size(zlib));
        assertEquals(Files.size(dir.resolve("zstd.qemu.qcow2")), Files.size(zstd));
    }

    @Test
    void packingAcrossClustersWithEveryRefcountWidthAndClusterSize() throws Exception {
        Path src = source("3M");
        for (String o : new String[]{"cluster_size=512", "cluster_size=4k,refcount_bits=1", "refcount_bits=2",
                "cluster_size=2M", "extended_l2=on", "compat=0.10", "refcount_bits=64"}) {
            CopyOracle.convertBoth(dir, src, "raw", "qcow2", "p" + o.hashCode(), "-c", "-o", o);
        }
    }

    @Test
    void compressedFromEveryFormatAndWithZeroDetectionOff() throws Exception {
        Path raw = source("4M");
        for (String f : new String[]{"qcow2", "qed"}) {
            Path src = dir.resolve("src." + f);
            Qemu.img("convert", "-O", f, raw, src).ok();
            Qemu.io(src, f, "write -z 1M 64k");
            CopyOracle.convertBoth(dir, src, f, "qcow2", "from-" + f, "-c");
            CopyOracle.convertBoth(dir, src, f, "qcow2", "s0-" + f, "-c", "-S", "0");
        }
    }

    @Test
    void severalCompressorsInAnyOrderGiveAValidImage() throws Exception {
        Path src = source("6M");
        Path out = dir.resolve("w.qcow2");
        Dm.run("convert", "-c", "-W", "-m", "16", "-O", "qcow2", src, out).ok();
        assertEquals(0, Qemu.img("compare", "-f", "raw", src, out).exitCode());
        JsonNode check = Qemu.check(out, "qcow2").ok().json();
        assertEquals(0, check.path("leaks").asInt());
        assertEquals(0, check.path("corruptions").asInt());
    }

    @Test
    void compressedClustersCanBeOverwrittenAfterwards() throws Exception {
        Path src = source("4M");
        Path out = dir.resolve("c.qcow2");
        Dm.run("convert", "-c", "-O", "qcow2", src, out).ok();
        Qemu.io(out, "qcow2", "write -P 0x99 0 100k", "write -z 2M 64k");
        Qemu.io(src, "raw", "write -P 0x99 0 100k", "write -z 2M 64k");
        assertEquals(0, Qemu.img("compare", "-f", "raw", src, out).exitCode());
        assertEquals(0, Qemu.check(out, "qcow2").exitCode());
    }
}
