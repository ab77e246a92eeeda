package io.diskmorph.format.vdi;

import io.diskmorph.testing.Dm;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * An 8 TiB VDI (a 32 MiB block map, twice the heap) in a JVM with a 16 MiB
 * heap: the map is read in pages through a bounded cache, so map, info and
 * check answer as qemu-img does, and an in-place conversion to qcow2 (32 MiB
 * heap) keeps the guest. About 10 s, most of it qemu-img compare.
 */
@Tag("slow")
class VdiLargeImageTest {
    @TempDir
    Path dir;

    @Test
    void eightTebibytesInASmallHeap() throws Exception {
        Path img = dir.resolve("big.vdi");
        Qemu.create(img, "vdi", "8T");
        Qemu.io(img, "vdi", "write -P 1 0 64k", "write -P 2 4T 128k", "write -P 3 8191G 64k");
        Qemu.Result map = Dm.inHeap("-Xmx16m", "map", "--output=json", img.toString());
        assertEquals(0, map.exitCode(), map.err());
        assertEquals(Qemu.map(img, null), Qemu.MapLine.parse(map.json()));
        Qemu.Result info = Dm.inHeap("-Xmx16m", "info", "--output=json", img.toString());
        assertEquals(Qemu.img("info", "--output=json", img).ok().json(), info.json());
        Qemu.Result check = Dm.inHeap("-Xmx16m", "check", img.toString());
        assertEquals(0, check.exitCode(), check.err() + check.out());

        Path original = dir.resolve("original.vdi");
        Files.copy(img, original);
        Qemu.Result convert = Dm.inHeap("-Xmx32m", "convert", "--in-place", "-O", "qcow2", img.toString());
        assertEquals(0, convert.exitCode(), convert.err());
        assertEquals(0, Qemu.img("check", img).exitCode());
        assertEquals(0, Qemu.compare(original, img), "the guest survives");
    }
}
