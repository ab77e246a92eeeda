package io.diskmorph.testing;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * The qemu-img / qemu-io oracle: runs the real tools and parses their JSON.
 * Every test that claims agreement with QEMU goes through here.
 */
public final class Qemu {
    public static final ObjectMapper JSON = new ObjectMapper();
    private static final long TIMEOUT_SECONDS = 300;

    private Qemu() {
    }

    /** Exit code and output of one process. */
    public record Result(int exitCode, String out, String err) {
        public Result ok() {
            if (exitCode != 0) {
                throw new AssertionError("command failed (" + exitCode + "): " + err + out);
            }
            return this;
        }

        public JsonNode json() {
            try {
                return JSON.readTree(out);
            } catch (IOException e) {
                throw new AssertionError("not JSON: " + out, e);
            }
        }
    }

    /**
     * Runs a command. A qemu-img command is retried when this qemu's LUKS key
     * derivation fails on its own timing ("Unable to get accurate CPU usage":
     * the PBKDF2 iteration count is measured with a CPU clock that can read
     * 0 ms), which happens now and then and is not what a test is about.
     */
    public static Result run(String... cmd) {
        Result r = runOnce(cmd);
        for (int attempt = 1; attempt < 10 && cmd[0].equals("qemu-img") && r.exitCode() != 0
                && r.err().contains("accurate CPU usage"); attempt++) {
            r = runOnce(cmd);
        }
        return r;
    }

    private static Result runOnce(String... cmd) {
        try {
            Process p = new ProcessBuilder(cmd).redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")))
                    .start();
            // read both streams fully (separate thread for stderr so neither pipe fills)
            var errF = java.util.concurrent.CompletableFuture.supplyAsync(() -> {
                try {
                    return new String(p.getErrorStream().readAllBytes(), StandardCharsets.UTF_8);
                } catch (IOException e) {
                    return "";
                }
            });
            String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            if (!p.waitFor(TIMEOUT_SECONDS, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                throw new AssertionError("timed out: " + Arrays.toString(cmd));
            }
            return new Result(p.exitValue(), out, errF.join());
        } catch (IOException e) {
            throw new AssertionError("cannot run " + cmd[0] + ": " + e.getMessage(), e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError(e);
        }
    }

    /** qemu-img with {@code args} (see {@link #run} for its retry). */
    public static Result img(Object... args) {
        return run(cmd("qemu-img", args));
    }

    /** qemu-io with one -c per command, e.g. io(path, "qcow2", "write -P 1 0 64k"). */
    public static Result io(Path image, String format, String... commands) {
        List<String> c = new ArrayList<>(List.of("qemu-io"));
        if (format != null) {
            c.add("-f");
            c.add(format);
        }
        for (String s : commands) {
            c.add("-c");
            c.add(s);
        }
        c.add(image.toString());
        Result r = run(c.toArray(String[]::new));
        if (r.exitCode != 0 || r.out.contains("failed") || r.err.contains("failed")) {
            throw new AssertionError("qemu-io failed: " + r.err + r.out);
        }
        return r;
    }

    public static void create(Path image, String format, String size, String... options) {
        List<String> c = new ArrayList<>(List.of("qemu-img", "create", "-q", "-f", format));
        if (options.length > 0) {
            c.add("-o");
            c.add(String.join(",", options));
        }
        c.add(image.toString());
        c.add(size);
        run(c.toArray(String[]::new)).ok();
    }

    /** qemu-img map --output=json, one entry per element. */
    public static List<MapLine> map(Path image, String format) {
        Result r = format == null ? img("map", "--output=json", image) : img("map", "-f", format, "--output=json", image);
        r.ok();
        return MapLine.parse(r.json());
    }

    /** Guest bytes through qemu: converts to a raw file. */
    public static void toRaw(Path image, String format, Path raw) {
        if (format == null) {
            img("convert", "-O", "raw", image, raw).ok();
        } else {
            img("convert", "-f", format, "-O", "raw", image, raw).ok();
        }
    }

    /** qemu-img check --output=json; the node plus exit code. */
    public static Result check(Path image, String format) {
        return format == null ? img("check", "--output=json", image) : img("check", "-f", format, "--output=json", image);
    }

    public static int compare(Path a, Path b) {
        return img("compare", a, b).exitCode;
    }

    private static String[] cmd(String tool, Object... args) {
        String[] c = new String[args.length + 1];
        c[0] = tool;
        for (int i = 0; i < args.length; i++) {
            c[i + 1] = String.valueOf(args[i]);
        }
        return c;
    }

    /** One qemu-img map JSON entry (offset -1 when absent). */
    public record MapLine(long start, long length, int depth, boolean present, boolean zero, boolean data,
                          long offset) {
        public static List<MapLine> parse(JsonNode arr) {
            List<MapLine> out = new ArrayList<>();
            for (JsonNode n : arr) {
                out.add(new MapLine(n.get("start").asLong(), n.get("length").asLong(), n.get("depth").asInt(),
                        n.get("present").asBoolean(), n.get("zero").asBoolean(), n.get("data").asBoolean(),
                        n.has("offset") ? n.get("offset").asLong() : -1));
            }
            return out;
        }
    }
}
