package io.diskmorph.cli;

import io.diskmorph.convert.ConversionFile;
import io.diskmorph.convert.ConversionPlan;
import io.diskmorph.convert.InPlaceConverter;
import io.diskmorph.convert.MoveReason;
import io.diskmorph.copy.CopyConversion;
import io.diskmorph.copy.CopyEngine;
import io.diskmorph.copy.PartFile;
import io.diskmorph.image.FormatOptions;
import io.diskmorph.image.Images;
import io.diskmorph.convert.Cancellation;
import io.diskmorph.image.ExitCodes;
import io.diskmorph.image.InvalidRequestException;
import io.diskmorph.image.NotEnoughSpaceException;
import io.diskmorph.image.OpenOptions;
import io.diskmorph.image.Sizes;
import io.diskmorph.storage.FileStorage;
import io.diskmorph.storage.FileStorageDir;
import io.diskmorph.storage.LockMode;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

final class ConvertCommand implements Cli.Command {
    private Cli.CommandSpec spec;
    String sourceFormat;
    String targetFormat;
    List<String> options;
    boolean inPlace;
    boolean dryRun;
    Path layoutFile;
    boolean keepRollback;
    boolean progress;
    String progressFormat;
    boolean compress;
    String sparseSize;
    int parallel = 8;
    boolean outOfOrder;
    String backing;
    String backingFormat;
    String cache = "unsafe";
    boolean quiet;
    OutputFormat output = OutputFormat.human;
    boolean noBacking;
    List<Path> files;

    @Override
    public Cli.Declaration declare(Cli.CommandSpec io) {
        spec = io;
        return new Cli.Declaration("convert", "Convert an image to another format.", "SRC DST copies the guest "
                + "content into a new image, like qemu-img convert: holes and zeros are not read or written, "
                + "DST appears only once complete (it is built as DST.part-<pid>).", "With --in-place the image "
                + "is converted inside its own file: guest data stays where it is, only new metadata is "
                + "written, and the header is switched last (crash-safe; see 'recover'). To raw (-O raw, from qcow2, "
                + "QED or a monolithicSparse VMDK) every unit moves to its guest offset in small steps, the file a valid source image "
                + "after each; only the first unit goes through the journal, and no rollback record is kept. A VMDK descriptor with one flat "
                + "extent becomes raw (-O raw), and a raw file a VMDK monolithicFlat pair (-O vmdk -o "
                + "subformat=monolithicFlat), by renames alone: IMAGE names the converted image afterwards.")
                .option("-f", "FMT", "Source format (default: probe).", v -> sourceFormat = v)
                .option("-O", "FMT", "Target format (copy default: raw, as qemu-img).", v -> targetFormat = v)
                .option("-o", "OPTIONS", "Target format options k=v[,k=v...] ('-o help' lists them).",
                        v -> options = Cli.add(options, v))
                .flag("--in-place", "Convert inside the image's own file.", () -> inPlace = true)
                .flag("--dry-run", "With --in-place: print the plan, change nothing.", () -> dryRun = true)
                .option("--layout", "FILE", "With --in-place --dry-run: also write an SVG picture of the file "
                        + "before and after, side by side, with lines from where moved data is to where it goes.",
                        v -> layoutFile = Cli.path(v, "FILE"))
                .flag("--keep-rollback", "With --in-place: keep a record that lets 'rollback' restore the "
                        + "original format exactly, as long as the image is not written (not with -O raw from qcow2, "
                        + "QED or VMDK: convert back in place instead).",
                        () -> keepRollback = true)
                .flag("-p", "Show progress (a bar on a terminal, plain lines otherwise; with --in-place on stderr, "
                        + "each phase and the bytes of the phases that write or move data).", () -> progress = true)
                .option("--progress", "json|human", "Print progress as one JSON object per line "
                        + "({\"bytes-done\": N, \"bytes-total\": M}; with --in-place on stderr, with the "
                        + "\"phase\" too), or as -p.", v -> progressFormat = v)
                .flag("-c", "Copy: write compressed clusters (qcow2; compression_type=zstd for zstd).",
                        () -> compress = true)
                .option("-S", "SIZE", "Copy: zero runs of at least SIZE in the data are not written (default "
                        + "4k; 0 writes everything, fully allocating the target).", v -> sparseSize = v)
                .option("-m", "N", "Copy: chunks in flight, 1 to 16 (default 8).",
                        v -> parallel = Cli.integer(v, "-m"))
                .flag("-W", "Copy: allow writes out of guest order.", () -> outOfOrder = true)
                .option("-B", "BACKING", "Copy: make DST an overlay of BACKING and copy only what the source's top "
                        + "layer holds.",
                        v -> backing = v)
                .option("-F", "FMT", "Copy: format of BACKING (required with -B).", v -> backingFormat = v)
                .option("-t", "CACHE", "Copy: unsafe (default, as qemu-img: no flush) or writeback (DST is "
                        + "synced before it is renamed into place).", v -> cache = v)
                .flag("-q", "Copy: quiet (no progress).", () -> quiet = true)
                .option("--output", "human|json", "Report format: the plan or outcome of --in-place; a copy "
                        + "prints nothing, or with json its report (and -p's progress goes to stderr).",
                        v -> output = Cli.choice(OutputFormat.class, v, "--output"))
                .flag("--no-backing", "Do not open backing files (their names are still carried over).",
                        () -> noBacking = true)
                .parameters("IMAGE", 0, 2, v -> files = Cli.add(files, Cli.path(v, "IMAGE")));
    }

    @Override
    public Integer call() throws Exception {
        if (FormatOptionsHelp.asked(options)) { // -O's options (copy default raw), and what --in-place takes
            FormatOptionsHelp.print(spec.getOut(), targetFormat != null ? targetFormat : "raw", true);
            return 0;
        }
        if (files == null) { // IMAGE is optional only for -o help
            throw new Cli.ParameterException("missing IMAGE");
        }
        if (inPlace && !dryRun) {
            FileStorage.prepareNativeCalls(); // the image is opened for writing: its locks are OFD locks
        }
        Map<String, String> opts = new LinkedHashMap<>();
        if (options != null) {
            for (String o : options) {
                opts.putAll(FormatOptions.parseList(o));
            }
        }
        if (layoutFile != null && !(inPlace && dryRun)) {
            throw new InvalidRequestException("--layout draws a planned in-place conversion: it needs --in-place "
                    + "--dry-run");
        }
        if (!inPlace) {
            return copy(opts);
        }
        if (files.size() != 1) {
            throw new InvalidRequestException("--in-place takes one IMAGE");
        }
        if (targetFormat == null) {
            throw new InvalidRequestException("--in-place needs the target format (-O)");
        }
        if (compress || sparseSize != null || backing != null || backingFormat != null || outOfOrder
                || !cache.equals("unsafe")) {
            throw new InvalidRequestException("-c, -S, -B, -F, -W and -t apply to copy conversion (SRC DST), not "
                    + "to --in-place");
        }
        CopyProgressPrinter.Mode mode = ProgressOptions.mode(progress, progressFormat, false);
        InPlaceProgressPrinter printer = mode == null ? null : new InPlaceProgressPrinter(spec.getErr(), mode);
        Path path = files.get(0);
        InPlaceConverter.Request req = new InPlaceConverter.Request(sourceFormat, targetFormat, opts, keepRollback);
        PrintWriter out = spec.getOut();
        PrintWriter err = spec.getErr();
        long start = System.nanoTime();
        try (ConversionFile file = ConversionFile.open(path, dryRun ? LockMode.SHARED : LockMode.EXCLUSIVE,
                Images.backingOpener(path, OpenOptions.forReading().withFollowBacking(!noBacking)))) {
            ConversionPlan plan;
            int signalled = 0;
            if (dryRun) {
                plan = InPlaceConverter.plan(file, req, printer != null ? printer : InPlaceConverter.Progress.NONE);
                if (printer != null) {
                    printer.endBar();
                }
                if (layoutFile != null && !plan.nothingToChange()) {
                    plan = InPlacePicture.write(file, req, plan, path, sourceFormat, layoutFile);
                }
            } else {
                try (SignalCancellation signals = new SignalCancellation(err, path.toString())) {
                    try {
                        plan = InPlaceConverter.convert(file, req,
                                printer != null ? printer : InPlaceConverter.Progress.NONE, signals.cancel);
                    } catch (Cancellation.CancelledException e) {
                        if (printer != null) {
                            printer.endBar();
                        }
                        if (e.validAs() != null) { // a roll-forward: valid at every round
                            err.println("diskmorph: " + path + ": interrupted (" + e.reason() + ") before the "
                                    + "switch; the image is a valid " + e.validAs() + " image with the same "
                                    + "content, part of its data moved (run the conversion again to continue)");
                            return signals.exitCode();
                        }
                        err.println("diskmorph: " + path + ": interrupted (" + e.reason() + ") before the switch; "
                                + "the original image is back, unchanged");
                        return signals.exitCode();
                    }
                    signalled = signals.exitCode();
                }
                if (printer != null) {
                    printer.endBar();
                }
            }
            double seconds = (System.nanoTime() - start) / 1e9;
            if (output == OutputFormat.json) {
                out.println(Json.pretty(toJson(plan, dryRun, seconds)));
            } else {
                human(out, plan, path, dryRun, seconds);
            }
            if (signalled != 0 && !plan.nothingToChange()) {
                err.println("diskmorph: " + path + ": a signal came after the switch; the conversion was completed");
            }
            if (plan.replacesRollbackRecord() && !plan.nothingToChange()) {
                err.println("diskmorph: note: " + (dryRun ? "this conversion would remove" : "removed")
                        + " the rollback record of the earlier conversion (" + path.getFileName()
                        + ".dmrollback): it no longer matches the file");
            }
            if (dryRun && !plan.enoughSpace() && !plan.nothingToChange()) {
                err.println("diskmorph: " + new NotEnoughSpaceException("the in-place conversion", plan.extraSpace(),
                        plan.availableSpace()).getMessage());
                return ExitCodes.NO_SPACE;
            }
        }
        return 0;
    }

    /** SRC DST: a copy into a new image, published under DST only once complete. */
    private int copy(Map<String, String> opts) throws Exception {
        if (files.size() != 2) {
            throw new InvalidRequestException("convert needs SRC and DST (or --in-place IMAGE)");
        }
        if (dryRun || keepRollback) {
            throw new InvalidRequestException("--dry-run and --keep-rollback apply to --in-place");
        }
        if (noBacking) {
            throw new InvalidRequestException("--no-backing applies to --in-place; a copy reads the whole chain "
                    + "(use -B to keep a backing file)");
        }
        long minSparse = 4096;
        if (sparseSize != null) {
            minSparse = Sizes.parse(sparseSize);
            if (minSparse % 512 != 0 || minSparse > CopyEngine.MAX_SPARSE) {
                throw new InvalidRequestException("-S must be a multiple of 512 up to 16M (0 disables zero "
                        + "detection and fully allocates the target), not " + sparseSize);
            }
        }
        if (parallel < 1 || parallel > CopyEngine.MAX_PARALLEL) {
            throw new InvalidRequestException("-m must be between 1 and " + CopyEngine.MAX_PARALLEL);
        }
        CopyConversion.Cache cacheMode = switch (cache) {
            case "unsafe" -> CopyConversion.Cache.UNSAFE;
            case "writeback" -> CopyConversion.Cache.WRITEBACK;
            default -> throw new InvalidRequestException("-t must be unsafe or writeback, not '" + cache + "'");
        };
        CopyProgressPrinter.Mode mode = ProgressOptions.mode(progress, progressFormat, false);
        PrintWriter out = spec.getOut();
        PrintWriter err = spec.getErr();
        // progress goes to stdout as qemu-img prints it, unless stdout carries the JSON report
        CopyEngine.Progress p = mode == null || quiet ? CopyEngine.Progress.NONE
                : new CopyProgressPrinter(output == OutputFormat.json ? err : out, mode);
        CopyConversion.Request req = new CopyConversion.Request(files.get(0), sourceFormat, files.get(1),
                targetFormat != null ? targetFormat : "raw", opts, backing, backingFormat,
                new CopyEngine.Settings(minSparse, compress, parallel, outOfOrder), cacheMode);
        PartFile part = PartFile.forTarget(files.get(1));
        part.removeOnInterrupt(msg -> {
            err.println("diskmorph: " + msg);
            err.flush();
        });
        long start = System.nanoTime();
        CopyConversion.Result result = CopyConversion.run(req, part, p);
        if (output == OutputFormat.json) {
            out.println(Json.pretty(copyJson(req, opts, result, (System.nanoTime() - start) / 1e9)));
        }
        return 0;
    }

    /**
     * A copy's report: source and target as named, formats, the target's
     * virtual size and backing file (qemu-img info's names), the -o options
     * as given (create's), what was written, and the target file's
     * allocated bytes (qemu-img info's actual-size).
     */
    private Map<String, Object> copyJson(CopyConversion.Request req, Map<String, String> opts,
                                         CopyConversion.Result r, double seconds) throws java.io.IOException {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("source", req.source().toString());
        m.put("source-format", r.sourceFormat());
        m.put("target", req.target().toString());
        m.put("target-format", req.targetFormat());
        m.put("virtual-size", r.virtualSize());
        m.put("backing-filename", r.backing());
        m.put("backing-filename-format", r.backingFormat());
        m.put("options", new LinkedHashMap<>(opts));
        m.put("compressed", compress);
        m.put("data-bytes", r.written().dataBytes());
        m.put("compressed-bytes", r.written().compressedBytes());
        m.put("zero-bytes", r.written().zeroBytes());
        long actual = -1;
        try (FileStorage f = FileStorage.open(req.target(), true, LockMode.NONE)) {
            actual = f.allocatedBytes();
        }
        m.put("actual-size", actual >= 0 ? actual : null);
        m.put("seconds", Math.round(seconds * 1000) / 1000.0);
        return m;
    }

    static Map<String, Object> toJson(ConversionPlan p, boolean dryRun, double seconds) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("dry-run", dryRun);
        m.put("nothing-to-change", p.nothingToChange());
        m.put("source-format", p.sourceFormat());
        m.put("target-format", p.targetFormat());
        m.put("virtual-size", p.virtualSize());
        m.put("cluster-size", p.clusterSize());
        m.put("original-length", p.originalLength());
        m.put("final-length", p.finalLength());
        m.put("kept-bytes", p.keptBytes());
        m.put("moved-bytes", p.movedBytesTotal());
        m.put("moved-by-reason", p.movedBytesByName());
        m.put("zero-clusters", p.zeroClusters());
        m.put("zeroed-data-bytes", p.zeroedDataBytes());
        m.put("metadata-bytes", p.metadataBytes());
        m.put("header-bytes", p.headerBytes());
        m.put("overwritten-bytes", p.overwrittenBytes());
        m.put("journal-bytes", p.journalBytes());
        m.put("extra-space", p.extraSpace());
        m.put("available-space", p.availableSpace());
        m.put("enough-space", p.enoughSpace());
        m.put("policy", p.policy());
        m.put("notes", p.notes());
        m.put("keep-rollback", p.keepRollback());
        Map<String, Object> phases = new LinkedHashMap<>();
        p.phaseSeconds().forEach((k, v) -> phases.put(k, Math.round(v * 10000) / 10000.0));
        m.put("phase-seconds", phases);
        if (!dryRun) {
            m.put("seconds", Math.round(seconds * 1000) / 1000.0);
        }
        return m;
    }

    private static void human(PrintWriter out, ConversionPlan p, Path path, boolean dryRun, double seconds) {
        if (p.nothingToChange()) {
            out.printf("%s: already %s with these options; nothing to change (nothing written)%n", path,
                    p.targetFormat());
            return;
        }
        out.printf("%s: %s -> %s in place%s%n", path, p.sourceFormat(), p.targetFormat(), dryRun ? " (dry run: "
                + "nothing written)" : "");
        if ("rename".equals(p.policy())) { // a descriptor + flat data file switched by renames: nothing moves
            out.printf("  virtual size:      %s, every byte stays in its file%n", Sizes.human(p.virtualSize()));
        } else {
            out.printf("  virtual size:      %s, target cluster size %d%n", Sizes.human(p.virtualSize()),
                    p.clusterSize());
            out.printf("  kept in place:     %s (%d clusters)%n", Sizes.human(p.keptBytes()), p.keptUnits());
        }
        if (!"rename".equals(p.policy())) {
            out.printf("  moved:             %s (%d clusters)%n", Sizes.human(p.movedBytesTotal()), p.movedUnits());
        }
        for (Map.Entry<MoveReason, Long> e : p.movedBytes().entrySet()) {
            out.printf("    %-16s %s%n", Sizes.human(e.getValue()), e.getKey().text());
        }
        if (p.zeroClusters() > 0) {
            out.printf("  zero clusters:     %d%n", p.zeroClusters());
        }
        if (p.zeroedDataBytes() > 0) {
            out.printf("  reads zeros:       %s mapped as data in holes of the file: left unallocated, not moved%n",
                    Sizes.human(p.zeroedDataBytes()));
        }
        out.printf("  new metadata:      %s (+ %d header bytes)%n", Sizes.human(p.metadataBytes()), p.headerBytes());
        out.printf("  journal:           %s (original bytes of %s overwritten)%n", Sizes.human(p.journalBytes()),
                Sizes.human(p.overwrittenBytes()));
        out.printf("  file length:       %d -> %d%n", p.originalLength(), p.finalLength());
        out.printf(Locale.ROOT, "  extra space:       %s at most (%.3f%% of the virtual "
                + "size)%n", Sizes.human(p.extraSpace()),
                p.virtualSize() > 0 ? 100.0 * p.extraSpace() / p.virtualSize() : 0.0);
        for (String note : p.notes()) {
            out.printf("  note: %s%n", note);
        }
        if (dryRun) {
            out.printf("  free space:        %s available: %s%n", Sizes.human(p.availableSpace()),
                    p.enoughSpace() ? "enough" : "NOT ENOUGH, the conversion would be refused");
        }
        if (!dryRun) {
            out.printf(Locale.ROOT, "  done in %.3f s%s%n", seconds,
                    p.keepRollback() ? "; 'diskmorph rollback " + path + "' restores the original" : "");
        }
    }
}
