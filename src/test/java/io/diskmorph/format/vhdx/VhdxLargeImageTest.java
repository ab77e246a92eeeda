package io.diskmorph.format.vhdx;

import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A sparse 64 TiB VHDX (the format's largest disk) of 4 MiB blocks: its BAT
 * of 16 Mi entries is 128 MiB, more than the heap of the JVM that maps,
 * describes and checks it (-Xmx64m): the BAT is read in pages through a
 * bounded cache. The file holds about 400 KiB on disk.
 */
@Tag("slow")
class VhdxLargeImageTest {
    @TempDir
    Path dir;

    private static Qemu.Result smallHeap(String... args) {
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java")
                .toString(), "-Xmx64m", "--enable-native-access=ALL-UNNAMED", "-cp",
                System.getProperty("java.class.path"), "io.diskmorph.cli.Main"));
        cmd.addAll(List.of(args));
        return Qemu.run(cmd.toArray(String[]::new));
    }

    @Test
    void sparse64TiB() throws Exception {
        Path img = dir.resolve("big.vhdx");
        Qemu.create(img, "vhdx", "64T", "block_size=4M,block_state_zero=off");
        long last = (64L << 40) - 4096;
        Qemu.io(img, "vhdx", "write -P 1 0 64k", "write -P 2 40T 64k", "write -P 3 " + last + " 4096");
        Qemu.Result map = smallHeap("map", "--output=json", img.toString());
        assertEquals(0, map.exitCode(), map.err());
        List<Qemu.MapLine> lines = Qemu.MapLine.parse(map.json());
        assertEquals(5, lines.size(), map.out());
        assertTrue(lines.get(2).data() && lines.get(2).start() == 40L << 40, map.out());
        assertTrue(lines.get(4).data() && lines.get(4).start() + lines.get(4).length() == 64L << 40, map.out());
        VhdxReadTest.assertHostOffsetsAreTheBats(img);
        Qemu.Result info = smallHeap("info", "--output=json", img.toString());
        assertEquals(Qemu.img("info", "--output=json", img).ok().json(), info.json());
        Qemu.Result check = smallHeap("check", img.toString());
        assertEquals(0, check.exitCode(), check.err() + check.out());
        Qemu.Result dry = smallHeap("convert", "--in-place", "--dry-run", "-O", "qcow2", img.toString());
        assertEquals(0, dry.exitCode(), dry.err() + dry.out());
    }
}
