package io.diskmorph.format.qcow;

import io.diskmorph.testing.Dm;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * A 4 TiB qcow (a 16 MiB L1 table, as big as the heap) in a JVM with a
 * 16 MiB heap: the L1 is read in 4 KiB pages through a bounded cache, so
 * map and check answer at once (qemu-img 7.2 maps an 8 TiB qcow in about 8
 * minutes: its qcow block status answers one cluster at a time, so it is
 * not asked here). The oracle is the in-place conversion to qcow2 (32 MiB
 * heap), which keeps every cluster where it is: qemu-img's map of the
 * qcow2 is diskmorph's map of the qcow, and qemu-io reads the data back.
 */
@Tag("slow")
class QcowLargeImageTest {
    @TempDir
    Path dir;

    @Test
    void fourTebibytesInASmallHeap() throws Exception {
        Path img = dir.resolve("big.qcow");
        Qemu.create(img, "qcow", "4T");
        Qemu.io(img, "qcow", "write -P 1 0 64k", "write -P 2 2T 128k", "write -P 3 4095G 64k");
        Qemu.Result map = Dm.inHeap("-Xmx16m", "map", "--output=json", img.toString());
        assertEquals(0, map.exitCode(), map.err());
        List<Qemu.MapLine> ours = Qemu.MapLine.parse(map.json());
        assertEquals(6, ours.size(), ours.toString());
        Qemu.Result check = Dm.inHeap("-Xmx16m", "check", img.toString());
        assertEquals(0, check.exitCode(), check.err() + check.out());
        Qemu.Result info = Dm.inHeap("-Xmx16m", "info", "--output=json", img.toString());
        assertEquals(Qemu.img("info", "--output=json", img).ok().json(), info.json());

        Qemu.Result convert = Dm.inHeap("-Xmx32m", "convert", "--in-place", "-O", "qcow2", img.toString());
        assertEquals(0, convert.exitCode(), convert.err());
        assertEquals(0, Qemu.img("check", img).exitCode());
        assertEquals(Qemu.map(img, "qcow2"), ours, "every cluster stayed where diskmorph's qcow map put it");
        Qemu.io(img, "qcow2", "read -P 1 0 64k", "read -P 2 2T 128k", "read -P 3 4095G 64k", "read -P 0 1G 1M");
    }
}
