package io.diskmorph.format.parallels;

import io.diskmorph.testing.Dm;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import java.nio.file.Path;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * A 900 GiB Parallels image of 64 KiB clusters (a 56 MiB BAT, over three
 * times the heap) in a JVM with a 16 MiB heap: the BAT is read in pages
 * through a bounded cache, so map, info and check answer as qemu-img does,
 * and an in-place conversion to qcow2 (32 MiB heap) keeps the guest.
 * (qemu-img 7.2 map aborts on a parallels disk of 1 TiB or more: its
 * block_status counts sectors in an int.)
 */
@Tag("slow")
class ParallelsLargeImageTest {
    @TempDir
    Path dir;

    @Test
    void nineHundredGibibytesInASmallHeap() throws Exception {
        Path img = dir.resolve("big.parallels");
        Qemu.create(img, "parallels", "900G", "cluster_size=64k");
        Qemu.io(img, "parallels", "write -P 1 0 64k", "write -P 2 400G 128k", "write -P 3 899G 64k");
        Qemu.Result map = Dm.inHeap("-Xmx16m", "map", "--output=json", img.toString());
        assertEquals(0, map.exitCode(), map.err());
        assertEquals(Qemu.map(img, null), Qemu.MapLine.parse(map.json()));
        Qemu.Result info = Dm.inHeap("-Xmx16m", "info", "--output=json", img.toString());
        assertEquals(Qemu.img("info", "--output=json", img).ok().json(), info.json());
        Qemu.Result check = Dm.inHeap("-Xmx16m", "check", img.toString());
        assertEquals(0, check.exitCode(), check.err() + check.out());

        Qemu.Result convert = Dm.inHeap("-Xmx32m", "convert", "--in-place", "-O", "qcow2", img.toString());
        assertEquals(0, convert.exitCode(), convert.err());
        assertEquals(0, Qemu.img("check", img).exitCode());
        // qemu-img compare walks a parallels disk this size for many minutes: the written data is read instead,
        // and the converted image's map names exactly those clusters
        Qemu.io(img, "qcow2", "read -P 1 0 64k", "read -P 2 400G 128k", "read -P 3 899G 64k",
                "read -P 0 64k 64k");
        long data = Qemu.map(img, "qcow2").stream().filter(Qemu.MapLine::data).mapToLong(Qemu.MapLine::length).sum();
        assertEquals(256L << 10, data, "four 64 KiB clusters of data");
    }
}
