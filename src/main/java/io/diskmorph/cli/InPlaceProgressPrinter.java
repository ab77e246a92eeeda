package io.diskmorph.cli;

import io.diskmorph.convert.InPlaceConverter;
import io.diskmorph.image.Sizes;

import java.io.PrintWriter;
import java.util.Locale;

/**
 * Progress by phase, on stderr (stdout keeps the report, which --output=json
 * makes a JSON document): an in-place conversion, check, measure, recover
 * and rollback. Each phase as it starts, and for the phases that know their
 * total (write: guest bytes walked; move: bytes moved by the roll-forward to
 * raw; check's tables; bytes restored...) a bar redrawn on a terminal, a
 * line every 10 % otherwise, or one JSON object per line ({"phase": ...,
 * "bytes-done": N, "bytes-total": M}) for programs.
 */
final class InPlaceProgressPrinter implements InPlaceConverter.Progress {
    private static final long TERMINAL_INTERVAL_NS = 100_000_000L;
    private static final long JSON_INTERVAL_NS = 200_000_000L;
    private static final int LINE_STEP_PERCENT = 10;

    private final PrintWriter err;
    private final CopyProgressPrinter.Mode mode;
    private String phase;
    private boolean barOpen;
    private boolean printed;
    private long lastPrint;
    private int lastPercent;
    /** The phase's end was printed: repeated reports of it (a walk past the disk's end) print nothing. */
    private boolean phaseEnded;

    InPlaceProgressPrinter(PrintWriter err, CopyProgressPrinter.Mode mode) {
        this.err = err;
        this.mode = mode;
    }

    @Override
    public void update(String phase, long done, long total) {
        long now = System.nanoTime();
        if (!phase.equals(this.phase)) {
            endBar();
            this.phase = phase;
            printed = false;
            phaseEnded = false;
            lastPercent = 0; // the phase's line says it started: the first percentage line is at 10 %
            if (mode == CopyProgressPrinter.Mode.JSON) {
                json(phase, done, total);
            } else {
                err.println("  [" + phase + "]");
            }
            err.flush();
        }
        if (total <= 0) {
            return;
        }
        boolean last = done >= total;
        if (last && phaseEnded) {
            return;
        }
        phaseEnded = last;
        int percent = (int) Math.min(100, done * 100 / total);
        switch (mode) {
            case JSON -> {
                if (last || !printed || now - lastPrint >= JSON_INTERVAL_NS) {
                    json(phase, done, total);
                }
            }
            case LINES -> {
                if (percent >= lastPercent + LINE_STEP_PERCENT || last) {
                    err.println("  " + phase + ": " + percent + "% (" + Sizes.human(done) + " of "
                            + Sizes.human(total) + ")");
                    lastPercent = last ? 100 : percent - percent % LINE_STEP_PERCENT;
                }
            }
            case TERMINAL -> {
                if (last || !printed || now - lastPrint >= TERMINAL_INTERVAL_NS) {
                    err.print("\r  " + CopyProgressPrinter.bar(percent)
                            + String.format(Locale.ROOT, " %3d%% ", percent) + Sizes.human(done) + " of "
                            + Sizes.human(total) + "\033[K");
                    barOpen = true;
                }
            }
        }
        printed = true;
        lastPrint = now;
        err.flush();
    }

    private void json(String phase, long done, long total) {
        err.printf("{\"phase\": \"%s\", \"bytes-done\": %d, \"bytes-total\": %d}%n", phase, done, total);
        printed = true;
        lastPrint = System.nanoTime();
    }

    /** Ends the bar's line, so the next phase or the report starts on a line of its own. */
    void endBar() {
        if (barOpen) {
            err.println();
            err.flush();
            barOpen = false;
        }
    }
}
