package io.diskmorph.format.vpc;

import io.diskmorph.testing.Dm;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * VHDs at their size limit in a 16 MiB heap: a 2040 GiB dynamic image (a
 * 4 MiB BAT, read in pages through the bounded cache) maps, shows and
 * checks as qemu-img says and converts in place to qcow2 (32 MiB heap); a
 * 1 TiB sparse raw file becomes a fixed VHD and raw again by its footer.
 */
@Tag("slow")
class VpcLargeImageTest {
    @TempDir
    Path dir;

    @Test
    void theLargestDynamicDiskInASmallHeap() throws Exception {
        Path img = dir.resolve("big.vhd");
        Qemu.create(img, "vpc", "2040G");
        Qemu.io(img, "vpc", "write -P 1 0 64k", "write -P 2 1T 128k", "write -P 3 2039G 64k");
        Qemu.Result map = Dm.inHeap("-Xmx16m", "map", "--output=json", img.toString());
        assertEquals(0, map.exitCode(), map.err());
        assertEquals(Qemu.map(img, null), Qemu.MapLine.parse(map.json()));
        Qemu.Result info = Dm.inHeap("-Xmx16m", "info", "--output=json", img.toString());
        assertEquals(Qemu.img("info", "--output=json", img).ok().json(), info.json());
        Qemu.Result check = Dm.inHeap("-Xmx16m", "check", img.toString());
        assertEquals(0, check.exitCode(), check.err() + check.out());

        Path original = dir.resolve("original.vhd");
        Files.copy(img, original);
        Qemu.Result convert = Dm.inHeap("-Xmx32m", "convert", "--in-place", "-O", "qcow2", img.toString());
        assertEquals(0, convert.exitCode(), convert.err());
        assertEquals(0, Qemu.img("check", img).exitCode());
        assertEquals(0, Qemu.img("compare", "-f", "qcow2", "-F", "vpc", img, original).exitCode(), "the guest survives");
    }

    @Test
    void aTebibyteRawFileAndItsFixedVhd() throws Exception {
        Path img = dir.resolve("big.img");
        Qemu.create(img, "raw", "1T");
        Qemu.io(img, "raw", "write -P 1 0 64k", "write -P 2 512G 64k", "write -P 3 1048575M 1M");
        Qemu.Result toVhd = Dm.inHeap("-Xmx16m", "convert", "--in-place", "-O", "vpc", "-o", "force_size=on",
                img.toString());
        assertEquals(0, toVhd.exitCode(), toVhd.err());
        assertEquals(1L << 40, Qemu.img("info", "-f", "vpc", "--output=json", img).ok().json()
                .get("virtual-size").asLong());
        assertEquals(Qemu.map(img, "vpc"), Qemu.MapLine.parse(Dm.inHeap("-Xmx16m", "map", "-f", "vpc",
                "--output=json", img.toString()).json()));
        Qemu.Result toRaw = Dm.inHeap("-Xmx16m", "convert", "--in-place", "-f", "vpc", "-O", "raw", img.toString());
        assertEquals(0, toRaw.exitCode(), toRaw.err());
        assertEquals(1L << 40, Files.size(img));
        assertEquals("raw", Qemu.img("info", "--output=json", img).ok().json().get("format").asText());
    }
}
