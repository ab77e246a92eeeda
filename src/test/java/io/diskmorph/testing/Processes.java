package io.diskmorph.testing;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

/** diskmorph in a separate process, as a user starts it: its own JVM, a terminal when a test needs one. */
public final class Processes {
    private Processes() {
    }

    /**
     * The launcher when its jar is current (it would otherwise rebuild during
     * the test), else the same entry point the launcher execs, in a new JVM.
     */
    public static List<String> diskmorphCommand() throws IOException {
        Path root = Path.of("").toAbsolutePath();
        Path launcher = root.resolve("diskmorph");
        Path jar = root.resolve("target/diskmorph.jar");
        if (Files.isExecutable(launcher) && Files.exists(jar) && !newerThan(root.resolve("src/main"), jar)
                && Files.getLastModifiedTime(root.resolve("pom.xml")).compareTo(Files.getLastModifiedTime(jar)) < 0) {
            return List.of(launcher.toString());
        }
        return javaCommand();
    }

    /** A JVM running io.diskmorph.cli.Main from the test class path (target/classes and the dependencies). */
    public static List<String> javaCommand() {
        return List.of(javaBinary(), "--enable-native-access=ALL-UNNAMED", "-cp", System.getProperty("java.class.path"),
                "io.diskmorph.cli.Main");
    }

    public static String javaBinary() {
        return ProcessHandle.current().info().command().orElse("java");
    }

    /**
     * Runs {@code cmd} on a pseudo-terminal, as in an interactive shell
     * (util-linux {@code script}); returns what the terminal received and
     * the command's exit code. {@code env} is added to this process's.
     */
    public static Qemu.Result onTerminal(List<String> cmd, Map<String, String> env, long timeoutSeconds) {
        StringBuilder line = new StringBuilder();
        for (String a : cmd) {
            line.append(line.isEmpty() ? "" : " ").append(shellQuote(a));
        }
        // -e: script exits with the command's code; -q: no "Script started" lines; the log goes nowhere
        ProcessBuilder pb = new ProcessBuilder("script", "-qec", line.toString(), "/dev/null")
                .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")));
        pb.environment().putAll(env);
        return run(pb, timeoutSeconds);
    }

    /** Runs a prepared process to its end, both streams read fully. */
    public static Qemu.Result run(ProcessBuilder pb, long timeoutSeconds) {
        try {
            Process p = pb.start();
            CompletableFuture<String> err = CompletableFuture.supplyAsync(() -> {
                try {
                    return new String(p.getErrorStream().readAllBytes(), StandardCharsets.UTF_8);
                } catch (IOException e) {
                    return "";
                }
            });
            String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            if (!p.waitFor(timeoutSeconds, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                throw new AssertionError("timed out: " + pb.command());
            }
            return new Qemu.Result(p.exitValue(), out, err.join());
        } catch (IOException e) {
            throw new AssertionError("cannot run " + pb.command() + ": " + e.getMessage(), e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError(e);
        }
    }

    /**
     * SIGINT (2), or SIGTERM (15) for a process that ignores SIGINT: a process
     * started with SIGINT ignored (a background job of a non-interactive
     * shell, and so the build that runs the tests) keeps it ignored.
     */
    public static int interruptSignal(long pid) throws IOException {
        for (String l : Files.readAllLines(Path.of("/proc/" + pid + "/status"))) {
            if (l.startsWith("SigIgn:")) {
                return (Long.parseLong(l.substring(7).strip(), 16) & (1L << (2 - 1))) != 0 ? 15 : 2;
            }
        }
        return 2;
    }

    public static String shellQuote(String s) {
        return "'" + s.replace("'", "'\\''") + "'";
    }

    /** Arguments as strings (paths, numbers). */
    public static List<String> args(List<String> command, Object... args) {
        List<String> c = new ArrayList<>(command);
        for (Object a : args) {
            c.add(String.valueOf(a));
        }
        return c;
    }

    private static boolean newerThan(Path tree, Path jar) throws IOException {
        var stamp = Files.getLastModifiedTime(jar);
        try (var s = Files.walk(tree)) {
            return s.anyMatch(p -> {
                try {
                    return Files.getLastModifiedTime(p).compareTo(stamp) > 0;
                } catch (IOException e) {
                    return true;
                }
            });
        }
    }
}
