package io.diskmorph.cli;

import io.diskmorph.convert.InPlaceConverter;
import io.diskmorph.copy.Measure;
import io.diskmorph.image.FormatOptions;
import io.diskmorph.image.InvalidRequestException;
import io.diskmorph.image.Sizes;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

final class MeasureCommand implements Cli.Command {
    private Cli.CommandSpec spec;
    String sourceFormat;
    String targetFormat;
    List<String> options;
    String size;
    boolean inPlace;
    OutputFormat output = OutputFormat.human;
    Path image;
    private final ProgressOptions progress = new ProgressOptions();

    @Override
    public Cli.Declaration declare(Cli.CommandSpec io) {
        spec = io;
        return new Cli.Declaration("measure", "How large an image of the target format would be (qemu-img "
                + "measure): the file size needed for the source's data, and with every cluster "
                + "allocated.", "With --in-place, also the extra disk space and the bytes moved by converting "
                + "IMAGE inside its own file (-O vmdk: only those, as qemu-img measures no VMDK).")
                .option("-f", "FMT", "Source format (default: probe).", v -> sourceFormat = v)
                .option("-O", "FMT", "Target format.", v -> targetFormat = v)
                .required()
                .option("-o", "OPTIONS", "Target format options k=v[,k=v...] ('-o help' lists them).",
                        v -> options = Cli.add(options, v))
                .option("--size", "SIZE", "Measure an empty image of SIZE instead of IMAGE.", v -> size = v)
                .flag("--in-place", "Also plan an in-place conversion of IMAGE (nothing is written).",
                        () -> inPlace = true)
                .option("--output", "human|json", "Report format.",
                        v -> output = Cli.choice(OutputFormat.class, v, "--output"))
                .mixin(d -> progress.declare(d, "with an IMAGE: \"measure\", the guest bytes walked of the "
                        + "virtual size; with --in-place then the planner's phases (\"plan\": guest bytes laid "
                        + "out)"))
                .parameters("IMAGE", 0, 1, v -> image = Cli.path(v, "IMAGE"));
    }

    @Override
    public Integer call() throws Exception {
        if (FormatOptionsHelp.asked(options)) {
            FormatOptionsHelp.print(spec.getOut(), targetFormat, true);
            return 0;
        }
        if (image != null && size != null) {
            throw new InvalidRequestException("--size cannot be used together with an IMAGE");
        }
        if (image == null && size == null) {
            throw new InvalidRequestException("either --size SIZE or one IMAGE must be given");
        }
        if (inPlace && image == null) {
            throw new InvalidRequestException("--in-place needs an IMAGE");
        }
        Map<String, String> opts = new LinkedHashMap<>();
        if (options != null) {
            for (String o : options) {
                opts.putAll(FormatOptions.parseList(o));
            }
        }
        InPlaceProgressPrinter printer = progress.printer(spec.getErr(), false);
        Measure.Result r;
        try {
            r = image != null
                    ? Measure.image(image, sourceFormat, targetFormat, opts, inPlace,
                            printer != null ? printer : InPlaceConverter.Progress.NONE)
                    : Measure.empty(Sizes.parse(size), targetFormat, opts);
        } finally {
            if (printer != null) {
                printer.endBar();
            }
        }
        PrintWriter out = spec.getOut();
        if (output == OutputFormat.json) {
            out.println(Json.pretty(toJson(r)));
        } else {
            if (r.required() >= 0) {
                out.println("required size: " + r.required());
                out.println("fully allocated size: " + r.fullyAllocated());
            }
            if (r.bitmaps() >= 0) {
                out.println("bitmaps size: " + r.bitmaps());
            }
            if (r.inPlace() != null) {
                out.println("in-place extra space: " + r.inPlace().extraSpace());
                out.println("in-place moved bytes: " + r.inPlace().movedBytes());
                out.println("in-place final length: " + r.inPlace().finalLength());
            }
        }
        return 0;
    }

    /** qemu-img's keys ("required", "fully-allocated", "bitmaps"), then diskmorph's in-place figures. */
    private static Map<String, Object> toJson(Measure.Result r) {
        Map<String, Object> m = new LinkedHashMap<>();
        if (r.bitmaps() >= 0) {
            m.put("bitmaps", r.bitmaps());
        }
        if (r.required() >= 0) { // not for an in-place plan into VMDK, which qemu-img cannot measure
            m.put("required", r.required());
            m.put("fully-allocated", r.fullyAllocated());
        }
        if (r.inPlace() != null) {
            Map<String, Object> ip = new LinkedHashMap<>();
            ip.put("extra-space", r.inPlace().extraSpace());
            ip.put("moved-bytes", r.inPlace().movedBytes());
            ip.put("final-length", r.inPlace().finalLength());
            ip.put("kept-bytes", r.inPlace().keptBytes());
            ip.put("metadata-bytes", r.inPlace().metadataBytes());
            m.put("in-place", ip);
        }
        return m;
    }
}
