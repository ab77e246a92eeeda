package io.diskmorph.convert;

import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.BufferedReader;
import java.io.File;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Ctrl-C (or kill) during an in-place conversion, in a real process: the
 * conversion stops before its commit point, the original image is put back
 * byte for byte, the journal goes, and one line says what happened; the
 * exit code is the signal's (128 + n).
 */
class InPlaceInterruptTest {
    @TempDir
    Path dir;

    @ParameterizedTest
    @ValueSource(ints = {2, 15, 1}) // SIGINT, SIGTERM, SIGHUP
    void aSignalBeforeTheSwitchRestoresTheOriginal(int signal) throws Exception {
        // compressed clusters all move (decompressed): a write phase of 512 MiB, long enough to interrupt
        Path plain = dir.resolve("plain.qcow2");
        Qemu.create(plain, "qcow2", "512M");
        Qemu.io(plain, "qcow2", "write -P 0x5a 0 512M");
        Path img = dir.resolve("c.qcow2");
        Qemu.img("convert", "-c", "-O", "qcow2", plain, img).ok();
        Files.delete(plain);
        byte[] original = Files.readAllBytes(img);

        List<String> cmd = new ArrayList<>(io.diskmorph.testing.Processes.diskmorphCommand());
        cmd.addAll(List.of("convert", "--in-place", "-p", "-O", "qed", img.toString()));
        Process p = new ProcessBuilder(cmd).redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")))
                .redirectOutput(dir.resolve("out.txt").toFile()).start();
        BufferedReader err = new BufferedReader(new InputStreamReader(p.getErrorStream(), StandardCharsets.UTF_8));
        StringBuilder seen = new StringBuilder();
        String line;
        while ((line = err.readLine()) != null) {
            seen.append(line).append('\n');
            if (line.contains("[write]")) {
                break;
            }
        }
        assertNotNull(line, "the conversion never reached its write phase: " + seen);
        // freeze it at once, queue the signal, let it go on: the signal lands in the write phase
        Qemu.run("kill", "-STOP", String.valueOf(p.pid())).ok();
        Qemu.run("kill", "-" + signal, String.valueOf(p.pid())).ok();
        Qemu.run("kill", "-CONT", String.valueOf(p.pid())).ok();
        assertTrue(p.waitFor(120, TimeUnit.SECONDS), "process did not stop");
        String rest = new String(p.getErrorStream().readAllBytes(), StandardCharsets.UTF_8);
        String message = rest.lines().filter(l -> l.startsWith("diskmorph:")).reduce("", (a, b) -> a + b);
        assertEquals(128 + signal, p.exitValue(), seen + rest);
        assertTrue(message.contains("before the switch") && message.contains("original image is back"), message);
        assertArrayEquals(original, Files.readAllBytes(img), "the original image, byte for byte");
        assertFalse(Files.exists(dir.resolve("c.qcow2.dmjournal")), "journal left behind");
        assertEquals(0, Qemu.check(img, "qcow2").exitCode());
    }
}
