package io.diskmorph.cli;

import io.diskmorph.image.DiskImage;
import io.diskmorph.image.Images;
import io.diskmorph.image.InvalidRequestException;
import io.diskmorph.layout.HostLayout;
import io.diskmorph.layout.LayoutSvg;

import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

/** A picture of the image's host file: where its header, tables, guest data, free space and holes lie. */
final class LayoutCommand implements Cli.Command {
    private Cli.CommandSpec spec;
    private final ImageOptions image = new ImageOptions();
    private String output = "svg";
    private Path outFile;
    private Path path;

    @Override
    public Cli.Declaration declare(Cli.CommandSpec io) {
        spec = io;
        return new Cli.Declaration("layout", "Draw the host file: header, tables, guest data (coloured by guest "
                + "offset, so fragmentation shows), unreferenced space and holes, with a legend and an axis in bytes. "
                + "Binned: a 4 TiB sparse image draws as quickly as a small one. Every format's metadata is named (a "
                + "streamOptimized VMDK's grains are compressed data, behind their markers); what no table "
                + "references is unreferenced space.")
                .mixin(image::declare)
                .option("--output", "svg|html|json", "svg (default), an html page with the picture and a table "
                        + "of bytes per kind, or json (the bytes per kind only).", v -> output = v)
                .option("-o", "FILE", "Write the picture to FILE (default: standard output).",
                        v -> outFile = Cli.path(v, "FILE"))
                .parameters("IMAGE", 1, 1, v -> path = Cli.path(v, "IMAGE"));
    }

    @Override
    public Integer call() throws Exception {
        if (!output.equals("svg") && !output.equals("html") && !output.equals("json")) {
            throw new InvalidRequestException("--output must be svg, html or json, not '" + output + "'");
        }
        HostLayout layout;
        try (DiskImage img = Images.open(path, image.readOnly())) {
            layout = HostLayout.of(img, path.getFileName().toString());
        }
        String text = switch (output) {
            case "html" -> LayoutSvg.html(layout);
            case "json" -> json(layout, path);
            default -> LayoutSvg.svg(layout);
        };
        if (outFile != null) {
            Files.writeString(outFile, text, StandardCharsets.UTF_8);
            spec.getOut().println(outFile);
        } else {
            PrintWriter out = spec.getOut();
            out.print(text);
        }
        return 0;
    }

    /** qemu-img info's names for the image, then the bin size and the bytes of each kind (the legend's names). */
    private static String json(HostLayout layout, Path path) {
        Map<String, Object> m = new java.util.LinkedHashMap<>();
        m.put("filename", path.toString());
        m.put("format", layout.format());
        m.put("virtual-size", layout.virtualSize());
        m.put("file-length", layout.fileLength());
        m.put("bin-bytes", layout.binBytes());
        m.put("bytes", new java.util.LinkedHashMap<String, Object>(layout.totals()));
        return Json.pretty(m) + "\n";
    }
}
