package io.diskmorph.cli;

import io.diskmorph.copy.CopyEngine;
import io.diskmorph.image.Sizes;

import java.io.PrintWriter;
import java.util.Locale;

/**
 * Progress of a copy: a bar redrawn in place on a terminal (percentage,
 * rate, time left), a plain line every few percent when the output is a file
 * or a pipe, or one JSON object per line for programs (bytes done, total).
 * Bytes are the data to copy, as qemu-img counts its progress.
 */
final class CopyProgressPrinter implements CopyEngine.Progress {
    enum Mode { TERMINAL, LINES, JSON }

    private static final long TERMINAL_INTERVAL_NS = 100_000_000L;
    private static final long JSON_INTERVAL_NS = 200_000_000L;
    private static final int LINE_STEP_PERCENT = 10;

    private final PrintWriter out;
    private final Mode mode;
    private final long start = System.nanoTime();
    // nanoTime has an arbitrary origin: "never printed" is a flag, not a sentinel time (now - Long.MIN_VALUE
    // overflows to a negative interval, which kept the bar from drawing until 100 %)
    private boolean printed;
    private long lastPrint;
    private int lastPercent = -1;
    private boolean finished;

    CopyProgressPrinter(PrintWriter out, Mode mode) {
        this.out = out;
        this.mode = mode;
    }

    /** -p: a bar on a terminal, lines otherwise (Java 22+: the console knows whether it is a terminal). */
    static Mode humanMode() {
        java.io.Console c = System.console();
        return c != null && c.isTerminal() ? Mode.TERMINAL : Mode.LINES;
    }

    @Override
    public void update(long done, long total) {
        if (finished) {
            return;
        }
        long now = System.nanoTime();
        boolean last = done >= total;
        int percent = total == 0 ? 100 : (int) (done * 100 / total);
        switch (mode) {
            case JSON -> {
                if (last || done == 0 || due(now, JSON_INTERVAL_NS)) {
                    out.printf("{\"bytes-done\": %d, \"bytes-total\": %d}%n", done, total);
                    out.flush();
                    lastPrint = now;
                    printed = true;
                }
            }
            case LINES -> {
                if (last || percent >= lastPercent + LINE_STEP_PERCENT || lastPercent < 0) {
                    out.println("progress: " + percent + "% (" + Sizes.human(done) + " of " + Sizes.human(total)
                            + rateAndEta(done, total, now) + ")");
                    out.flush();
                    lastPercent = percent - percent % LINE_STEP_PERCENT;
                }
            }
            case TERMINAL -> {
                if (last || due(now, TERMINAL_INTERVAL_NS)) {
                    out.print("\r" + bar(percent) + String.format(Locale.ROOT, " %3d%% ", percent)
                            + Sizes.human(done) + " of " + Sizes.human(total) + rateAndEta(done, total, now)
                            + "\033[K");
                    if (last) {
                        out.println();
                    }
                    out.flush();
                    lastPrint = now;
                    printed = true;
                }
            }
        }
        finished = last;
    }

    private boolean due(long now, long interval) {
        return !printed || now - lastPrint >= interval;
    }

    private String rateAndEta(long done, long total, long now) {
        double seconds = (now - start) / 1e9;
        if (done == 0 || seconds < 0.05) {
            return "";
        }
        double rate = done / seconds;
        String s = ", " + Sizes.human((long) rate) + "/s";
        if (done < total) {
            long left = Math.round((total - done) / rate);
            s += String.format(Locale.ROOT, ", %d:%02d left", left / 60, left % 60);
        }
        return s;
    }

    static String bar(int percent) {
        int width = 30;
        int filled = Math.min(width, percent * width / 100);
        return "[" + "#".repeat(filled) + "-".repeat(width - filled) + "]";
    }
}
