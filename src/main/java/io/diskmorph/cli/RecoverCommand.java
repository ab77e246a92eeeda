package io.diskmorph.cli;

import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;

import io.diskmorph.convert.ConversionFile;
import io.diskmorph.convert.Recovery;
import io.diskmorph.image.Images;
import io.diskmorph.image.OpenOptions;
import io.diskmorph.image.PhaseProgress;

import java.nio.file.Path;

final class RecoverCommand implements Cli.Command {
    private Cli.CommandSpec spec;
    Path path;
    boolean acceptMoved;
    OutputFormat output = OutputFormat.human;
    private final ProgressOptions progress = new ProgressOptions();

    @Override
    public Cli.Declaration declare(Cli.CommandSpec io) {
        spec = io;
        return new Cli.Declaration("recover", "Finish or undo an interrupted in-place conversion or "
                + "rollback.", "Before the header switch the original image is restored; after it the "
                + "conversion is completed.")
                .flag("--accept-moved", "The image was moved or copied to another file together with its "
                        + "journal: identify it by its content, not by its inode.", () -> acceptMoved = true)
                .option("--output", "human|json", "Output format (json: one object, documented in the README).",
                        v -> output = Cli.choice(OutputFormat.class, v, "--output"))
                .mixin(d -> progress.declare(d, "\"journal\" its bytes read, \"restore\" the saved bytes put "
                        + "back (or \"complete\"), \"sync\", \"cleanup\""))
                .parameters("IMAGE", 1, 1, v -> path = Cli.path(v, "IMAGE"));
    }

    @Override
    public Integer call() throws Exception {
        InPlaceProgressPrinter printer = progress.printer(spec.getErr(), false);
        try (ConversionFile file = ConversionFile.openAfterInterruption(path, Images.backingOpener(path, OpenOptions.forReading()))) {
            Recovery.Outcome o;
            try {
                o = Recovery.recover(file, acceptMoved, printer != null ? printer : PhaseProgress.NONE);
            } finally {
                if (printer != null) {
                    printer.endBar();
                }
            }
            if (output == OutputFormat.json) {
                Map<String, Object> m = new LinkedHashMap<>();
                m.put("image", path.toString());
                m.put("outcome", o.name().toLowerCase(Locale.ROOT).replace('_', '-'));
                m.put("message", o.text());
                spec.getOut().println(Json.pretty(m));
            } else {
                spec.getOut().println(path + ": " + o.text());
            }
        }
        return 0;
    }
}
