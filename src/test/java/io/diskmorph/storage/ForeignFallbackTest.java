package io.diskmorph.storage;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.diskmorph.image.ExitCodes;
import io.diskmorph.testing.Qemu;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Commands in a JVM without the JNI shim ({@code -Ddiskmorph.native=foreign}):
 * the sparse queries through java.lang.foreign and readers' locks through
 * the channel and /proc/locks, judged by qemu-img like the shim's path.
 */
class ForeignFallbackTest {
    @TempDir
    Path dir;

    private record Run(int exitCode, String out, String err) {
    }

    private static Run diskmorph(Object... args) throws Exception {
        List<String> cmd = new ArrayList<>(List.of(ProcessHandle.current().info().command().orElse("java"),
                "--enable-native-access=ALL-UNNAMED", "-Ddiskmorph.native=foreign", "-cp",
                System.getProperty("java.class.path"), "io.diskmorph.cli.Main"));
        for (Object a : args) {
            cmd.add(String.valueOf(a));
        }
        Process p = new ProcessBuilder(cmd).redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")))
                .start();
        var out = p.getInputStream().readAllBytes();
        var err = p.getErrorStream().readAllBytes();
        assertTrue(p.waitFor(60, TimeUnit.SECONDS));
        return new Run(p.exitValue(), new String(out), new String(err));
    }

    @Test
    void mapCopyAndLocksWithoutTheShim() throws Exception {
        Path raw = dir.resolve("holes.raw");
        byte[] data = new byte[1 << 20];
        new java.util.Random(5).nextBytes(data);
        try (RandomAccessFile f = new RandomAccessFile(raw.toFile(), "rw")) {
            f.setLength(64 << 20);
            f.seek(3 << 20);
            f.write(data);
            f.seek(40 << 20);
            f.write(data);
            f.write(new byte[1 << 20]); // written zeros: data to the file, zero to the guest
        }
        Run map = diskmorph("map", "-f", "raw", "--output=json", raw);
        assertEquals(0, map.exitCode(), map.err());
        assertEquals(Qemu.map(raw, "raw"), Qemu.MapLine.parse(new ObjectMapper().readTree(map.out())),
                "holes found through java.lang.foreign, as qemu-img finds them");

        Path qcow2 = dir.resolve("copy.qcow2");
        Run copy = diskmorph("convert", "-f", "raw", "-O", "qcow2", raw, qcow2);
        assertEquals(0, copy.exitCode(), copy.err());
        assertEquals(0, Qemu.compare(raw, qcow2));
        assertEquals(0, Qemu.img("check", qcow2).exitCode());

        // a reader's locks through the lock table: qemu-nbd holding the image for writing refuses it
        Process nbd = new ProcessBuilder("qemu-nbd", "-f", "qcow2", "--persistent", "--socket",
                dir.resolve("nbd.sock").toString(), qcow2.toString()).redirectErrorStream(true)
                .redirectOutput(dir.resolve("nbd.log").toFile()).start();
        try {
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
            while (!Files.exists(dir.resolve("nbd.sock")) && System.nanoTime() < deadline && nbd.isAlive()) {
                Thread.sleep(20);
            }
            assertTrue(Files.exists(dir.resolve("nbd.sock")), "qemu-nbd never opened the image");
            Run info = diskmorph("info", qcow2);
            assertEquals(ExitCodes.IN_USE, info.exitCode(), info.out() + info.err());
            assertTrue(info.err().contains("in use"), info.err());
        } finally {
            nbd.destroy();
            nbd.waitFor(10, TimeUnit.SECONDS);
        }
        Run info = diskmorph("info", qcow2);
        assertEquals(0, info.exitCode(), info.err());
    }
}
