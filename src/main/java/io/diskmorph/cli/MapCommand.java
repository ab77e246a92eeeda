package io.diskmorph.cli;

import io.diskmorph.image.ChainMap;
import io.diskmorph.image.DiskImage;
import io.diskmorph.image.Images;
import io.diskmorph.image.MapEntry;
import io.diskmorph.image.UnsupportedFeatureException;

import java.io.PrintWriter;
import java.nio.file.Path;

final class MapCommand implements Cli.Command {
    private Cli.CommandSpec spec;
    private final ImageOptions image = new ImageOptions();
    OutputFormat output = OutputFormat.human;
    Path path;

    @Override
    public Cli.Declaration declare(Cli.CommandSpec io) {
        spec = io;
        return new Cli.Declaration("map", "Show where guest data lives (qemu-img map).")
                .mixin(image::declare)
                .option("--output", "human|json", "Output format.",
                        v -> output = Cli.choice(OutputFormat.class, v, "--output"))
                .parameters("IMAGE", 1, 1, v -> path = Cli.path(v, "IMAGE"));
    }

    @Override
    public Integer call() throws Exception {
        PrintWriter out = spec.getOut();
        try (DiskImage img = Images.open(path, image.readOnly())) {
            ChainMap map = new ChainMap(img, true);
            StringBuilder line = new StringBuilder(128);
            if (output == OutputFormat.json) {
                out.print('[');
                boolean first = true;
                // qemu-img prints one empty entry for an empty disk
                boolean empty = img.virtualSize() == 0;
                while (map.hasNext() || empty) {
                    MapEntry e = empty ? new MapEntry(0, 0, 0, false, false, false, -1, null, false) : map.next();
                    empty = false;
                    line.setLength(0);
                    if (!first) {
                        line.append(",\n");
                    }
                    first = false;
                    line.append("{ \"start\": ").append(e.start()).append(", \"length\": ").append(e.length())
                            .append(", \"depth\": ").append(e.depth()).append(", \"present\": ").append(e.present())
                            .append(", \"zero\": ").append(e.zero()).append(", \"data\": ").append(e.data());
                    if (e.hasOffset()) {
                        line.append(", \"offset\": ").append(e.offset());
                    }
                    line.append('}');
                    out.append(line);
                }
                out.println(']');
            } else {
                out.printf("%-16s%-16s%-16s%s%n", "Offset", "Length", "Mapped to", "File");
                while (map.hasNext()) {
                    MapEntry e = map.next();
                    if (e.data() && !e.hasOffset()) {
                        // qemu-img's human map cannot show these either
                        throw new UnsupportedFeatureException("File contains external, encrypted or compressed "
                                + "clusters.");
                    }
                    if (e.data() && !e.zero()) {
                        out.printf("%-16s%-16s%-16s%s%n", hex(e.start()), hex(e.length()), hex(e.offset()), e.file());
                    }
                }
            }
        }
        return 0;
    }

    /** C's %#x: "0" for zero, else 0x-prefixed. */
    private static String hex(long v) {
        return v == 0 ? "0" : "0x" + Long.toHexString(v);
    }
}
