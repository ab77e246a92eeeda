package io.diskmorph.cli;

import io.diskmorph.image.CreateSpec;
import io.diskmorph.image.FormatOptions;
import io.diskmorph.image.FormatRegistry;
import io.diskmorph.image.ImageFormat;
import io.diskmorph.image.Images;
import io.diskmorph.image.InvalidRequestException;
import io.diskmorph.image.Sizes;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

final class CreateCommand implements Cli.Command {
    private Cli.CommandSpec spec;
    String format = "raw";
    List<String> options;
    String backing;
    String backingFormat;
    boolean unsafe;
    boolean quiet;
    OutputFormat output = OutputFormat.human;
    Path path;
    String size;

    @Override
    public Cli.Declaration declare(Cli.CommandSpec io) {
        spec = io;
        return new Cli.Declaration("create", "Create a new image (qemu-img create).")
                .option("-f", "FMT", "Image format (default raw).", v -> format = v)
                .option("-o", "OPTIONS", "Format options, k=v[,k=v...] ('-o help' lists them).",
                        v -> options = Cli.add(options, v))
                .option("-b", "BACKING", "Backing file.", v -> backing = v)
                .option("-F", "FMT", "Backing file format.", v -> backingFormat = v)
                .flag("-u", "Unsafe: do not open the backing file (SIZE is then required).", () -> unsafe = true)
                .flag("-q", "Quiet.", () -> quiet = true)
                .option("--output", "human|json", "Output format (json: the image, format, virtual size, backing file "
                        + "and options, printed after the image is made).",
                        v -> output = Cli.choice(OutputFormat.class, v, "--output"))
                .parameters("IMAGE", 0, 1, v -> path = Cli.path(v, "IMAGE"))
                .parameters("SIZE", 0, 1, v -> size = v);
    }

    @Override
    public Integer call() throws Exception {
        if (FormatOptionsHelp.asked(options)) {
            FormatOptionsHelp.print(spec.getOut(), format, false);
            return 0;
        }
        ImageFormat f = FormatRegistry.byName(format);
        if (!f.canWrite()) {
            throw f.writingNotSupported(); // before anything touches IMAGE
        }
        Map<String, String> opts = new LinkedHashMap<>();
        if (options != null) {
            for (String o : options) {
                opts.putAll(FormatOptions.parseList(o));
            }
        }
        if (path == null) {
            throw new InvalidRequestException("missing IMAGE");
        }
        String bFile = backing != null ? backing : opts.remove("backing_file");
        String bFmt = backingFormat != null ? backingFormat : opts.remove("backing_fmt");
        long bytes;
        if (size != null) {
            bytes = Sizes.parse(size);
        } else if (bFile != null && !unsafe) {
            bytes = Images.backingSize(path, bFile, bFmt);
        } else {
            throw new InvalidRequestException("missing SIZE (needed unless a backing file gives it)");
        }
        if (bFile != null && !unsafe && size != null) {
            Images.backingSize(path, bFile, bFmt); // the backing file must exist and open, as with qemu-img
        }
        CreateSpec cs = new CreateSpec(bytes, opts, bFile, bFmt);
        if (!quiet && output == OutputFormat.human) {
            StringBuilder sb = new StringBuilder("Formatting '" + path + "', fmt=" + f.name() + " size=" + bytes);
            if (bFile != null) {
                sb.append(" backing_file=").append(bFile);
                if (bFmt != null) {
                    sb.append(" backing_fmt=").append(bFmt);
                }
            }
            opts.forEach((k, v) -> sb.append(' ').append(k).append('=').append(v));
            spec.getOut().println(sb);
        }
        Images.create(path, f, cs);
        if (output == OutputFormat.json) {
            java.util.Map<String, Object> m = new java.util.LinkedHashMap<>();
            m.put("filename", path.toString());
            m.put("format", f.name());
            m.put("virtual-size", bytes);
            m.put("backing-filename", bFile);
            m.put("backing-filename-format", bFmt);
            m.put("options", new java.util.LinkedHashMap<>(opts));
            spec.getOut().println(Json.pretty(m));
        }
        return 0;
    }
}
