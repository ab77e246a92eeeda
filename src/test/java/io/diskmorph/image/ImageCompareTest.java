package io.diskmorph.image;

import io.diskmorph.testing.Dm;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * compare and compare -s against qemu-img compare on images qemu-img made
 * from the same guest content: data, zero blocks and holes on a sparse
 * 4 GiB disk, with writes past 2 GiB. Strict mode compares QEMU's whole
 * block status value at every offset its walk visits, so two formats that
 * hold the same clusters can still differ: QED answers one 2 GiB L2 table at
 * a time and qcow2 one 512 MiB table, so only QED's answer for the trailing
 * hole reaches the end of the disk (BDRV_BLOCK_EOF).
 */
class ImageCompareTest {
    @TempDir
    static Path dir;

    /** Sparse 4 GiB raw ({@link #WRITES}): data, written zeros and holes, also past 2 GiB; ends in a hole. */
    static Path raw;
    /** The same with data in the last MiB: every format's last answer then ends at the end. */
    static Path tail;

    /** Data, written zeros (data to the file, zeros to the guest), a zeroed range (a hole) and holes. */
    private static final String[] WRITES = {"write -P 1 0 1M", "write -z 4M 1M", "write -P 2 100M 3M",
            "write -P 0 200M 64k", "write -P 3 2049M 64k", "write -z 2050M 2M"};

    /** A sparse 4 GiB raw file written by qemu-io (copying it would not keep its written zeros and holes apart). */
    private static Path raw(String name, String... more) {
        Path p = dir.resolve(name);
        Qemu.create(p, "raw", "4G");
        Qemu.io(p, "raw", WRITES);
        if (more.length > 0) {
            Qemu.io(p, "raw", more);
        }
        return p;
    }

    @BeforeAll
    static void images() throws Exception {
        raw = raw("disk.raw");
        tail = raw("tail.raw", "write -P 5 4095M 1M");
        raw("copy.raw");
        for (Path src : new Path[]{raw, tail}) {
            String base = src.getFileName().toString().replace(".raw", "");
            for (String f : new String[]{"qcow2", "qed"}) {
                Qemu.img("convert", "-f", "raw", "-O", f, src, dir.resolve(base + "." + f)).ok();
            }
        }
        Qemu.img("convert", "-f", "raw", "-O", "qcow2", "-c", raw, dir.resolve("disk-c.qcow2")).ok();
        Qemu.img("convert", "-f", "raw", "-O", "qcow2", "-o", "cluster_size=4k", raw, dir.resolve("disk-4k.qcow2"))
                .ok();
        Qemu.img("convert", "-f", "raw", "-O", "qcow2", "-o", "preallocation=metadata", raw,
                dir.resolve("disk-prealloc.qcow2")).ok();
        Qemu.img("convert", "-f", "raw", "-O", "qed", "-o", "cluster_size=4k", raw, dir.resolve("disk-4k.qed")).ok();
        for (String f : new String[]{"qcow2", "qed"}) {
            Qemu.run("cp", "--sparse=never", dir.resolve("disk." + f).toString(), dir.resolve("copy." + f).toString())
                    .ok();
        }
        // a chain, and the same content flattened; and an overlay longer than its backing file
        Path base = dir.resolve("base.qcow2");
        Qemu.create(base, "qcow2", "4G");
        Qemu.io(base, "qcow2", "write -P 7 0 2M", "write -P 8 3G 1M");
        Path overlay = dir.resolve("overlay.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", overlay).ok();
        Qemu.io(overlay, "qcow2", "write -P 9 1M 2M", "write -z 3G 64k");
        Qemu.img("convert", "-O", "qcow2", overlay, dir.resolve("flat.qcow2")).ok();
        Path small = dir.resolve("small.qcow2");
        Qemu.create(small, "qcow2", "1G");
        Qemu.io(small, "qcow2", "write -P 7 0 2M");
        Qemu.img("create", "-q", "-f", "qcow2", "-b", "small.qcow2", "-F", "qcow2", dir.resolve("long.qcow2"), "4G")
                .ok();
        Qemu.img("convert", "-O", "qcow2", dir.resolve("long.qcow2"), dir.resolve("long-flat.qcow2")).ok();
        // extended L2: subclusters, an allocated cluster with unallocated subclusters
        Path ext = dir.resolve("ext.qcow2");
        Qemu.create(ext, "qcow2", "4G", "extended_l2=on");
        Qemu.io(ext, "qcow2", "write -P 1 0 4k", "write -z 64k 8k", "write -P 3 2049M 8k");
    }

    /** diskmorph's output and exit code are qemu-img's, for compare and compare -s, both ways round. */
    private static List<String> assertLikeQemu(String a, String b) {
        List<String> seen = new ArrayList<>();
        for (String[] pair : new String[][]{{a, b}, {b, a}}) {
            for (boolean strict : new boolean[]{false, true}) {
                List<Object> args = new ArrayList<>(List.of("compare"));
                if (strict) {
                    args.add("-s");
                }
                args.add(dir.resolve(pair[0]));
                args.add(dir.resolve(pair[1]));
                Qemu.Result q = Qemu.img(args.toArray());
                Dm.Result d = Dm.run(args.toArray());
                String what = String.join(" ", args.stream().map(String::valueOf).toList());
                assertEquals(q.out(), d.out(), what);
                assertEquals(q.exitCode(), d.exitCode(), what + ": " + d.err());
                seen.add(q.out().strip());
            }
        }
        return seen;
    }

    @Test
    void qcow2AndQedOfTheSameRawDifferInStrictModeOnly() {
        assertEquals(List.of("Images are identical.", "Strict mode: Offset 2148597760 block status mismatch!",
                        "Images are identical.", "Strict mode: Offset 2148597760 block status mismatch!"),
                assertLikeQemu("disk.qcow2", "disk.qed"));
        assertEquals(List.of("Images are identical.", "Images are identical.", "Images are identical.",
                "Images are identical."), assertLikeQemu("tail.qcow2", "tail.qed"));
    }

    @Test
    void formatsAgainstTheirRawSource() {
        for (String f : new String[]{"disk.qcow2", "disk.qed", "tail.qcow2", "tail.qed"}) {
            String source = f.startsWith("disk") ? "disk.raw" : "tail.raw";
            // holes of a raw file are allocated zeros with an offset; unallocated clusters are neither
            assertEquals("Strict mode: Offset 1048576 block status mismatch!", assertLikeQemu(f, source).get(1));
        }
        assertLikeQemu("disk.raw", "tail.raw"); // content differs in the last MiB
        assertLikeQemu("disk.qcow2", "tail.qed");
    }

    @Test
    void identicalCopies() {
        for (String f : new String[]{"raw", "qcow2", "qed"}) {
            assertEquals("Images are identical.", assertLikeQemu("disk." + f, "copy." + f).get(1));
        }
    }

    @Test
    void layoutsQemuReportsDifferently() {
        // compressed clusters have no host offset for QEMU
        assertLikeQemu("disk-c.qcow2", "disk.qcow2");
        assertLikeQemu("disk-c.qcow2", "disk.qed");
        // 4 KiB clusters: L2 tables of 2 MiB, so other places where an answer reaches the end
        assertLikeQemu("disk-4k.qcow2", "disk.qcow2");
        assertLikeQemu("disk-4k.qcow2", "disk.qed");
        assertLikeQemu("disk-4k.qed", "disk.qed");
        assertLikeQemu("disk-4k.qed", "disk-4k.qcow2");
        // metadata preallocation: QEMU looks for holes in the file under preallocated clusters
        assertLikeQemu("disk-prealloc.qcow2", "disk.qcow2");
        assertLikeQemu("disk-prealloc.qcow2", "disk.raw");
        assertLikeQemu("ext.qcow2", "disk.qcow2");
        assertLikeQemu("ext.qcow2", "ext.qcow2");
    }

    @Test
    void backingChains() {
        assertLikeQemu("overlay.qcow2", "flat.qcow2");
        assertLikeQemu("overlay.qcow2", "overlay.qcow2");
        // past the end of a shorter backing file: allocated zeros
        assertLikeQemu("long.qcow2", "long-flat.qcow2");
        assertLikeQemu("long.qcow2", "small.qcow2");
    }

    @Test
    void quietStrictReportsThroughTheExitCodeOnly() {
        Dm.Result r = Dm.run("compare", "-s", "-q", dir.resolve("disk.qcow2"), dir.resolve("disk.qed"));
        assertEquals(1, r.exitCode());
        assertEquals("", r.out() + r.err());
    }
}
