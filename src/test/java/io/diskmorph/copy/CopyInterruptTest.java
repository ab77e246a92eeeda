package io.diskmorph.copy;

import io.diskmorph.testing.Processes;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.BufferedReader;
import java.io.File;
import java.io.InputStreamReader;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Ctrl-C in the middle of a copy, in a real separate process: the part file
 * is removed and the process says so in one line, the target name is never
 * created (nor an existing target touched), the source is unchanged.
 */
class CopyInterruptTest {
    @TempDir
    Path dir;

    @Test
    void interruptLeavesNoTargetAndNoPartFile() throws Exception {
        Path src = dir.resolve("big.raw");
        byte[] chunk = new byte[8 << 20];
        Random rnd = new Random(1);
        try (FileChannel ch = FileChannel.open(src, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
            for (int i = 0; i < 12; i++) { // 96 MiB of incompressible data in a sparse 1 GiB disk
                rnd.nextBytes(chunk);
                ch.write(java.nio.ByteBuffer.wrap(chunk), (long) i * (32 << 20));
            }
            ch.write(java.nio.ByteBuffer.wrap(new byte[1]), (1L << 30) - 1);
        }
        String before = digest(src);
        Path existing = dir.resolve("existing.qcow2");
        Qemu.create(existing, "qcow2", "1M");
        byte[] existingBefore = Files.readAllBytes(existing);
        Path dst = dir.resolve("out.qcow2");

        for (Path target : new Path[]{dst, existing}) {
            List<String> cmd = new ArrayList<>(Processes.diskmorphCommand());
            // one slow compressor: the copy runs for seconds, long enough to be interrupted
            cmd.addAll(List.of("convert", "-c", "-m", "1", "--progress=json", "-O", "qcow2", src.toString(),
                    target.toString()));
            Process p = new ProcessBuilder(cmd).redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")))
                    .start();
            CompletableFuture<String> err = CompletableFuture.supplyAsync(() -> {
                try {
                    return new String(p.getErrorStream().readAllBytes(), StandardCharsets.UTF_8);
                } catch (java.io.IOException e) {
                    return "";
                }
            });
            BufferedReader out = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8));
            String line;
            boolean started = false;
            while ((line = out.readLine()) != null) {
                long done = Qemu.JSON.readTree(line).get("bytes-done").asLong();
                if (done > 0) {
                    started = true;
                    break;
                }
            }
            assertTrue(started, () -> "the copy never reported progress: " + err.join());
            try (var files = Files.list(dir)) {
                List<String> names = files.map(f -> f.getFileName().toString()).toList();
                assertTrue(names.contains(target.getFileName() + ".part-" + p.pid()),
                        "the copy is written under a temporary name: " + names + " " + cmd);
            }
            int signal = Processes.interruptSignal(p.pid());
            Qemu.run("kill", "-" + signal, String.valueOf(p.pid())).ok();
            assertTrue(p.waitFor(60, TimeUnit.SECONDS), "process did not stop");
            out.transferTo(java.io.Writer.nullWriter());
            assertEquals(128 + signal, p.exitValue());
            String message = err.join().strip();
            assertEquals(1, message.lines().count(), message);
            assertTrue(message.startsWith("diskmorph: interrupted: removed the unfinished copy"), message);
            try (var files = Files.list(dir)) {
                assertTrue(files.noneMatch(f -> f.getFileName().toString().contains(".part-")), "part file left");
            }
        }
        assertFalse(Files.exists(dst), "an interrupted copy must not appear under the target name");
        assertArrayEquals(existingBefore, Files.readAllBytes(existing), "an existing target is untouched");
        assertEquals(before, digest(src), "the source is untouched");
    }

    private static String digest(Path p) throws Exception {
        MessageDigest md = MessageDigest.getInstance("SHA-256");
        try (var in = Files.newInputStream(p)) {
            byte[] b = new byte[1 << 20];
            int n;
            while ((n = in.read(b)) > 0) {
                md.update(b, 0, n);
            }
        }
        return HexFormat.of().formatHex(md.digest());
    }
}
