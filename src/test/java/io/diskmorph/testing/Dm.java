package io.diskmorph.testing;

import com.fasterxml.jackson.databind.JsonNode;
import io.diskmorph.cli.Main;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Path;
import java.util.ArrayList;
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
     * Runs the CLI in a JVM of its own with the heap limit {@code maxHeap}
     * ("-Xmx16m"): the large-image tests show that memory stays bounded.
     */
    public static Qemu.Result inHeap(String maxHeap, Object... args) {
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                maxHeap, "--enable-native-access=ALL-UNNAMED", "-cp", System.getProperty("java.class.path"),
                Main.class.getName()));
        for (Object a : args) {
            cmd.add(String.valueOf(a));
        }
        return Qemu.run(cmd.toArray(String[]::new));
    }

    public static List<Qemu.MapLine> map(Object image, String format) {
        Result r = format == null ? run("map", "--output=json", image) : run("map", "-f", format, "--output=json", image);
        r.ok();
        return Qemu.MapLine.parse(r.json());
    }
}
