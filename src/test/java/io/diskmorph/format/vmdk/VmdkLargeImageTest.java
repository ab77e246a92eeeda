package io.diskmorph.format.vmdk;

import io.diskmorph.testing.Dm;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * 2 TB disks in a JVM with a 16 MiB heap: grain tables are read on demand
 * through a bounded cache, so a monolithicSparse disk of 65,536 grain tables
 * and a twoGbMaxExtentSparse disk of 1,024 extent files open, map, describe
 * and check as qemu-img does. About 15 s, most of it qemu-img map (which
 * answers one grain at a time).
 */
@Tag("slow")
class VmdkLargeImageTest {
    @TempDir
    Path dir;

    private static Qemu.Result smallHeap(String... args) {
        return Dm.inHeap("-Xmx16m", (Object[]) args);
    }

    @Test
    void monolithicSparse2TB() throws Exception {
        Path img = dir.resolve("big.vmdk");
        Qemu.create(img, "vmdk", "2T");
        Qemu.io(img, "vmdk", "write -P 1 0 64k", "write -P 2 1T 128k", "write -P 3 2047G 64k");
        Qemu.Result map = smallHeap("map", "--output=json", img.toString());
        assertEquals(0, map.exitCode(), map.err());
        assertEquals(Qemu.map(img, null), Qemu.MapLine.parse(map.json()));
        Qemu.Result info = smallHeap("info", "--output=json", img.toString());
        assertEquals(Qemu.img("info", "--output=json", img).ok().json(), info.json());
        Qemu.Result check = smallHeap("check", img.toString());
        assertEquals(0, check.exitCode(), check.err() + check.out());
    }

    @Test
    void twoGbMaxExtentSparse2TB() throws Exception {
        Path img = dir.resolve("split.vmdk");
        Qemu.create(img, "vmdk", "2T", "subformat=twoGbMaxExtentSparse");
        Qemu.io(img, "vmdk", "write -P 1 0 64k", "write -P 2 1T 128k");
        Qemu.Result info = smallHeap("info", "--output=json", img.toString());
        assertEquals(0, info.exitCode(), info.err());
        assertEquals(Qemu.img("info", "--output=json", img).ok().json(), info.json());
        Qemu.Result map = smallHeap("map", "--output=json", img.toString());
        assertEquals(0, map.exitCode(), map.err());
        assertEquals(Qemu.map(img, null), Qemu.MapLine.parse(map.json()));
        Qemu.Result check = smallHeap("check", img.toString());
        assertEquals(0, check.exitCode(), check.err() + check.out());
    }
}
