package io.diskmorph.cli;

import io.diskmorph.image.InvalidRequestException;

import java.io.PrintWriter;

/**
 * -p and --progress=json|human for the commands that report their phases on
 * stderr (check, measure, recover, rollback), printed by
 * {@link InPlaceProgressPrinter}; stdout keeps the command's result.
 */
final class ProgressOptions {
    boolean progress;
    String format;

    /** Adds -p and --progress; {@code measure} says what the bytes of the command's phases are. */
    void declare(Cli.Declaration d, String measure) {
        d.flag("-p", "Show progress on stderr (a bar on a terminal, a line every 10 % otherwise): each phase, "
                        + measure + ".", () -> progress = true)
                .option("--progress", "json|human", "Progress on stderr as one JSON object per line ({\"phase\": "
                        + "..., \"bytes-done\": N, \"bytes-total\": M}; a total of 0 announces a phase without a "
                        + "byte count), or as -p.", v -> {
                            if (!v.equals("json") && !v.equals("human")) { // a usage error, before anything opens
                                throw new Cli.ParameterException("--progress must be json or human, not '" + v
                                        + "'");
                            }
                            format = v;
                        });
    }

    /**
     * The printer asked for, or null when progress is off ({@code quiet}
     * silences -p and --progress=human, not --progress=json).
     */
    InPlaceProgressPrinter printer(PrintWriter err, boolean quiet) throws InvalidRequestException {
        CopyProgressPrinter.Mode mode = mode(progress, format, quiet);
        return mode == null ? null : new InPlaceProgressPrinter(err, mode);
    }

    /** The mode -p and --progress ask for, or null: none. */
    static CopyProgressPrinter.Mode mode(boolean progress, String format, boolean quiet)
            throws InvalidRequestException {
        if (format != null && !format.equals("json") && !format.equals("human")) {
            throw new InvalidRequestException("--progress must be json or human, not '" + format + "'");
        }
        if ("json".equals(format)) {
            return CopyProgressPrinter.Mode.JSON;
        }
        return (progress || format != null) && !quiet ? CopyProgressPrinter.humanMode() : null;
    }
}
