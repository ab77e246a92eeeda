package io.diskmorph.cli;

import io.diskmorph.convert.ConversionFile;
import io.diskmorph.convert.Recovery;

import java.nio.file.Path;

final class RollbackCommand implements Cli.Command {
    private Cli.CommandSpec spec;
    Path path;
    boolean acceptMoved;
    OutputFormat output = OutputFormat.human;
    private final ProgressOptions progress = new ProgressOptions();

    @Override
    public Cli.Declaration declare(Cli.CommandSpec io) {
        spec = io;
        return new Cli.Declaration("rollback", "Restore the original format of an image converted in place with "
                + "--keep-rollback (byte-identical), as long as it was not written since. A conversion to raw from "
                + "qcow2 or QED keeps no rollback record: convert it back in place instead. After a VMDK flat switch "
                + "both files come back.")
                .flag("--accept-moved", "The image was moved or copied to another file together with its "
                        + "rollback record: identify it by its content, not by its inode.", () -> acceptMoved = true)
                .option("--output", "human|json", "Output format (json: one object, documented in the README).",
                        v -> output = Cli.choice(OutputFormat.class, v, "--output"))
                .mixin(d -> progress.declare(d, "\"journal\" the record's bytes read, \"switch\", \"restore\" "
                        + "the saved bytes put back, \"sync\", \"cleanup\""))
                .parameters("IMAGE", 1, 1, v -> path = Cli.path(v, "IMAGE"));
    }

    @Override
    public Integer call() throws Exception {
        InPlaceProgressPrinter printer = progress.printer(spec.getErr(), false);
        try (ConversionFile file = ConversionFile.openAfterInterruption(path, null)) {
            try {
                Recovery.rollback(file, acceptMoved,
                        printer != null ? printer : io.diskmorph.image.PhaseProgress.NONE);
            } finally {
                if (printer != null) {
                    printer.endBar();
                }
            }
            if (output == OutputFormat.json) {
                java.util.Map<String, Object> m = new java.util.LinkedHashMap<>();
                m.put("image", path.toString());
                m.put("rolled-back", true);
                spec.getOut().println(Json.pretty(m));
            } else {
                spec.getOut().println(path + ": rolled back to the original format");
            }
        }
        return 0;
    }
}
