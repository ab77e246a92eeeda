package io.diskmorph.cli;

import io.diskmorph.image.DiskImage;
import io.diskmorph.image.ExitCodes;
import io.diskmorph.image.ImageCompare;
import io.diskmorph.image.Images;
import io.diskmorph.image.OpenOptions;
import io.diskmorph.storage.LockMode;

import java.io.PrintWriter;
import java.nio.file.Path;

/**
 * qemu-img compare: exit 0 identical, 1 different, 2 an image could not be
 * opened, 3 asking an image's allocation failed, 4 reading it failed.
 */
final class CompareCommand implements Cli.Command, Main.FailureCode {
    private Cli.CommandSpec spec;
    String format1;
    String format2;
    boolean strict;
    boolean quiet;
    boolean forceShare;
    OutputFormat output = OutputFormat.human;
    boolean progress;
    String progressFormat;
    Path first;
    Path second;

    @Override
    public Cli.Declaration declare(Cli.CommandSpec io) {
        spec = io;
        return new Cli.Declaration("compare", "Compare the guest content of two images (qemu-img compare).")
                .option("-f", "FMT", "Format of the first image.", v -> format1 = v)
                .option("-F", "FMT", "Format of the second image.", v -> format2 = v)
                .flag("-s", "Strict: allocation and size must match too.", () -> strict = true)
                .flag("-q", "Quiet: report only through the exit code.", () -> quiet = true)
                .flag("-U|--force-share", "Open without taking or honouring image locks.", () -> forceShare = true)
                .flag("-p", "Show progress on stderr (a bar on a terminal, plain lines otherwise), as qemu-img "
                        + "compare -p.", () -> progress = true)
                .option("--progress", "json|human", "Print progress on stderr as one JSON object per line "
                        + "({\"bytes-done\": N, \"bytes-total\": M}: guest bytes walked), or as -p.",
                        v -> progressFormat = v)
                .option("--output", "human|json", "Output format (json: identical, first differing offset, the "
                        + "message; qemu-img compare has no JSON). Exit codes as without it.",
                        v -> output = Cli.choice(OutputFormat.class, v, "--output"))
                .parameters("IMAGE1", 1, 1, v -> first = Cli.path(v, "IMAGE1"))
                .parameters("IMAGE2", 1, 1, v -> second = Cli.path(v, "IMAGE2"));
    }

    @Override
    public int failureExitCode() {
        return ExitCodes.COMPARE_ERROR;
    }

    @Override
    public Integer call() throws Exception {
        PrintWriter out = spec.getOut();
        OpenOptions base = OpenOptions.forReading().withLock(forceShare ? LockMode.NONE : LockMode.SHARED);
        try (DiskImage a = Images.open(first, base.withFormat(format1));
             DiskImage b = Images.open(second, base.withFormat(format2))) {
            ImageCompare.Result r;
            try {
                r = ImageCompare.compare(a, b, strict, progress(spec.getErr()));
            } catch (ImageCompare.Failure f) {
                // qemu-img's codes 3 and 4 say the images opened and the walk failed on one of them
                spec.getErr().println("diskmorph: " + (f.image() == 1 ? first : second) + ": " + f.getMessage());
                return f.exitCode();
            }
            if (output == OutputFormat.json) {
                java.util.Map<String, Object> m = new java.util.LinkedHashMap<>();
                m.put("identical", r.identical());
                m.put("first-difference", r.identical() ? null : r.mismatchOffset());
                m.put("message", r.message());
                out.println(Json.pretty(m));
            } else if (!quiet) {
                out.println(r.message());
            }
            return r.identical() ? ExitCodes.COMPARE_SAME : ExitCodes.COMPARE_DIFFERENT;
        }
    }

    /** -p / --progress=json: on stderr, so stdout keeps the result; no progress when quiet. */
    private ImageCompare.Progress progress(PrintWriter err) throws io.diskmorph.image.InvalidRequestException {
        CopyProgressPrinter.Mode mode = ProgressOptions.mode(progress, progressFormat, quiet);
        if (mode == null) {
            return (done, total) -> {
            };
        }
        CopyProgressPrinter printer = new CopyProgressPrinter(err, mode);
        return printer::update;
    }
}
