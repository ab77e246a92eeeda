package io.diskmorph.format.qcow2;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Check and repair of big images in a JVM with a 32 MiB heap: 16 M
 * preallocated clusters (64 GiB at 4 KiB, the tally is a byte per cluster,
 * L2 tables are streamed) and a 4 TiB sparse image with scattered data.
 * About 15 s on an idle machine, most of it qemu-img.
 */
@Tag("slow")
class Qcow2LargeCheckTest {
    @TempDir
    Path dir;

    @Test
    void sixteenMillionPreallocatedClustersInASmallHeap() throws Exception {
        Path img = dir.resolve("prealloc.qcow2");
        assertEquals(0, dm("create", "-q", "-f", "qcow2", "-o", "cluster_size=4k,preallocation=metadata",
                img.toString(), "64G").exitCode());
        assertSameCheckInSmallHeap(img);
        // one refcount lost: found like qemu, then rebuilt in the small heap
        Qcow2Files.setRefcount(img, Qcow2Files.dataCluster(img, 40L << 30), 0);
        assertSameCheckInSmallHeap(img);
        Qemu.Result r = dm("check", "-r", "all", "--output=json", img.toString());
        assertEquals(0, r.exitCode(), r.err());
        Oracle.assertCheckClean(img);
    }

    @Test
    void fourTebibyteSparseImageInASmallHeap() throws Exception {
        Path img = dir.resolve("sparse.qcow2");
        Qemu.create(img, "qcow2", "4T", "cluster_size=4096");
        List<String> writes = new ArrayList<>();
        java.util.Random rnd = new java.util.Random(11);
        for (int i = 0; i < 200; i++) {
            writes.add("write -P " + (i % 250 + 1) + " " + (rnd.nextLong(1L << 30) << 12) + " 8k");
        }
        Qemu.io(img, "qcow2", writes.toArray(String[]::new));
        assertSameCheckInSmallHeap(img);
    }

    private static void assertSameCheckInSmallHeap(Path img) throws IOException {
        Qemu.Result q = Qemu.check(img, "qcow2");
        Qemu.Result d = dm("check", "-f", "qcow2", "--output=json", img.toString());
        assertEquals(q.exitCode(), d.exitCode(), d.err());
        assertEquals(json(q.out()), json(d.out()));
        assertEquals(q.err(), d.err().replace("diskmorph: ", "qemu-img: "));
    }

    private static JsonNode json(String out) throws IOException {
        return ((ObjectNode) Qemu.JSON.readTree(out)).without("filename");
    }

    private static Qemu.Result dm(String... args) {
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java")
                .toString(), "-Xmx32m", "--enable-native-access=ALL-UNNAMED", "-cp",
                System.getProperty("java.class.path"), "io.diskmorph.cli.Main"));
        cmd.addAll(List.of(args));
        return Qemu.run(cmd.toArray(String[]::new));
    }
}
