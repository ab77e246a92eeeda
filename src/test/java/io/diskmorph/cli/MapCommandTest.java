package io.diskmorph.cli;

import io.diskmorph.testing.Dm;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.*;

/** The map command's output forms against qemu-img map's, on the cases its printing rules single out. */
class MapCommandTest {
    @TempDir
    Path dir;

    @Test
    void emptyDiskPrintsOneEmptyEntryLikeQemu() {
        Path img = dir.resolve("empty.qcow2");
        Qemu.create(img, "qcow2", "0");
        assertEquals(Qemu.map(img, "qcow2"), Dm.map(img, "qcow2"));
        assertEquals(1, Dm.map(img, "qcow2").size());
    }

    @Test
    void humanMapShowsDataWithOffsetsOnlyLikeQemu() {
        Path base = dir.resolve("base.qcow2");
        Qemu.create(base, "qcow2", "8M");
        Qemu.io(base, "qcow2", "write -P 1 0 64k", "write -z 1M 64k", "write -P 2 3M 128k");
        Path top = dir.resolve("top.qcow2");
        Qemu.create(top, "qcow2", "8M", "backing_file=base.qcow2", "backing_fmt=qcow2");
        Qemu.io(top, "qcow2", "write -P 3 32k 64k");
        Path pre = dir.resolve("pre.qcow2");
        Qemu.create(pre, "qcow2", "2M", "preallocation=metadata");
        for (Path p : new Path[]{top, pre}) {
            String q = Qemu.img("map", "-f", "qcow2", p).ok().out();
            String d = Dm.run("map", "-f", "qcow2", p).ok().out();
            assertEquals(q.replace(dir + "/", ""), d.replace(dir + "/", ""), p.toString());
        }
    }

    @Test
    void humanMapRefusesCompressedClustersLikeQemu() {
        Path raw = dir.resolve("c.raw");
        Qemu.create(raw, "raw", "1M");
        Qemu.io(raw, "raw", "write -P 5 0 64k");
        Path c = dir.resolve("c.qcow2");
        Qemu.img("convert", "-c", "-f", "raw", "-O", "qcow2", raw, c).ok();
        assertNotEquals(0, Qemu.img("map", c).exitCode());
        Dm.Result r = Dm.run("map", c);
        assertNotEquals(0, r.exitCode());
        assertTrue(r.oneLineError().contains("compressed"));
        assertEquals(Qemu.map(c, "qcow2"), Dm.map(c, "qcow2"), "the JSON form shows them");
    }
}
