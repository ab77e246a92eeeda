package io.diskmorph.testing;

import com.fasterxml.jackson.databind.JsonNode;
import io.diskmorph.cli.Main;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/** Runs diskmorph's CLI in-process and captures what a user would see. */
public final class Dm {
    private Dm() {
    }

    public record Result(int exitCode, String out, String err) {
        public Result ok() {
            if (exitCode != 0) {
                throw new AssertionError("diskmorph failed (" + exitCode + "): " + err + out);
            }
            return this;
        }

        public JsonNode json() {
            try {
                return Qemu.JSON.readTree(out);
            } catch (IOException e) {
                throw new AssertionError("not JSON: " + out, e);
            }
        }

        /** The one-line error contract: a single "diskmorph: ..." line, no stack trace. */
        public String oneLineError() {
            String e = err.strip();
            if (e.isEmpty() || e.contains("\n\tat ") || e.contains("Exception")) {
                throw new AssertionError("expected one clear error line, got: " + err);
            }
            return e;
        }
    }

    public static Result run(Object... args) {
        String[] a = new String[args.length];
        for (int i = 0; i < args.length; i++) {
            a[i] = String.valueOf(args[i]);
        }
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        int code = Main.run(a, new PrintWriter(out), new PrintWriter(err));
        return new Result(code, out.toString(), err.toString());
    }

    /**
     * The launcher when its jar is current (it would otherwise rebuild during
     * the test), else the same entry point the launcher execs, in a new JVM.
     */
    public static List<String> processCommand() throws Exception {
        Path root = Path.of("").toAbsolutePath();
        Path launcher = root.resolve("diskmorph");
        Path jar = root.resolve("target/diskmorph.jar");
        if (Files.isExecutable(launcher) && Files.exists(jar) && !newerThan(root.resolve("src/main"), jar)
                && Files.getLastModifiedTime(root.resolve("pom.xml")).compareTo(Files.getLastModifiedTime(jar)) < 0) {
            return List.of(launcher.toString());
        }
        String java = ProcessHandle.current().info().command().orElse("java");
        return List.of(java, "--enable-native-access=ALL-UNNAMED", "-cp", System.getProperty("java.class.path"),
                "io.diskmorph.cli.Main");
    }

    private static boolean newerThan(Path tree, Path jar) throws Exception {
        var stamp = Files.getLastModifiedTime(jar);
        try (var s = Files.walk(tree)) {
            return s.anyMatch(p -> {
                try {
                    return Files.getLastModifiedTime(p).compareTo(stamp) > 0;
                } catch (java.io.IOException e) {
                    return true;
                }
            });
        }
    }

    public static List<Qemu.MapLine> map(Object image, String format) {
        Result r = format == null ? run("map", "--output=json", image) : run("map", "-f", format, "--output=json", image);
        r.ok();
        return Qemu.MapLine.parse(r.json());
    }
}
