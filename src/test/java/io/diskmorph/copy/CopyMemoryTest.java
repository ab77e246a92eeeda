package io.diskmorph.copy;

import io.diskmorph.testing.PageCache;
import io.diskmorph.testing.Processes;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

/**
 * A copy's working set stays small whatever the size of the data (issue
 * 19: peak resident memory under 100 MiB without -c): the source is mapped
 * in small windows, the buffers are bounded. Measured on the whole process
 * (the launcher's JVM) by /usr/bin/time, on 512 MiB of data. The copy
 * also leaves its target's data out of the page cache (drop-behind).
 */
class CopyMemoryTest {
    @TempDir
    Path dir;

    @Test
    void peakResidentMemoryIsUnder100MiB() throws Exception {
        Path src = dir.resolve("src.raw");
        byte[] chunk = new byte[8 << 20];
        Random rnd = new Random(19);
        try (FileChannel ch = FileChannel.open(src, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
            for (int i = 0; i < 64; i++) { // 512 MiB of data in a 1 GiB disk, a hole after every 8 MiB
                rnd.nextBytes(chunk);
                ch.write(ByteBuffer.wrap(chunk), (long) i * (16 << 20));
            }
            ch.write(ByteBuffer.wrap(new byte[1]), (1L << 30) - 1);
        }
        for (String to : List.of("qcow2", "raw")) {
            Path dst = dir.resolve("out." + to);
            Path times = dir.resolve("time.txt");
            List<String> cmd = new ArrayList<>(List.of("/usr/bin/time", "-f", "%M", "-o", times.toString()));
            // the launcher's JVM flags (serial collector, C1 only, no perf data), whether or not its jar and
            // ahead-of-time cache exist yet (mvn verify runs the tests before it packages the jar)
            cmd.addAll(List.of(Processes.javaBinary(), "--enable-native-access=ALL-UNNAMED", "-XX:+UseSerialGC",
                    "-Ddiskmorph.drop-behind=on", // whatever the writes cost on this machine
                    "-XX:TieredStopAtLevel=1", "-XX:-UsePerfData", "-cp", System.getProperty("java.class.path"),
                    "io.diskmorph.cli.Main"));
            cmd.addAll(Processes.args(List.of(), "convert", "-O", to, src, dst));
            Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
            String out = new String(p.getInputStream().readAllBytes());
            assertEquals(0, p.waitFor(), out);
            long kib = Long.parseLong(Files.readString(times).strip().lines().reduce((a, b) -> b).orElseThrow());
            assertTrue(kib < 100 * 1024, "peak resident memory of a copy to " + to + ": " + kib + " KiB");
            // drop-behind (forced on): the 512 MiB written leave the page cache as the copy goes (a window
            // of 32 MiB under writeback, a step gathering, metadata)
            long cached = PageCache.residentBytes(dst);
            assertTrue(cached > 0 && cached <= 40 << 20, "page cache left holding the copy to " + to + ": " + cached + " bytes");
            assertEquals(0, Qemu.compare(src, dst));
            Files.delete(dst);
        }
    }
}
