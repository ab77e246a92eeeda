package io.diskmorph.layout;

import io.diskmorph.image.Sizes;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Draws a {@link HostLayout} as SVG: the file as rows of bins read left to
 * right, top to bottom, each row labelled with its first byte offset; a bin
 * is a column split into one bar per kind, its height in proportion to the
 * kind's bytes in the bin (so the area of a kind is its bytes, at one scale
 * for the whole picture: the root's data-bytes-per-area). Guest data is
 * coloured by its mean guest offset (blue at 0 to red at the end of the
 * disk), so data stored out of guest order shows as a change of colour.
 * Runs of whole bins of one kind and colour are one rectangle.
 */
public final class LayoutSvg {
    static final int COLUMNS = 256;
    static final double BIN_WIDTH = 3.75;
    static final double ROW_HEIGHT = 14;
    static final double ROW_GAP = 3;
    static final double LEFT = 90;
    static final double TOP = 58;
    static final double WIDTH = LEFT + COLUMNS * BIN_WIDTH + 20;
    private static final String[] METADATA_COLOURS = {"#2e7d32", "#f9a825", "#6a1b9a", "#00838f", "#ad1457",
            "#4e342e", "#558b2f", "#283593"};

    private LayoutSvg() {
    }

    /** Colour of each kind ("guest data" has a gradient, given here by its middle). */
    static Map<String, String> colours(HostLayout l) {
        Map<String, String> c = new java.util.LinkedHashMap<>();
        int m = 0;
        for (String k : l.kinds) {
            c.put(k, switch (k) {
                case HostLayout.DATA -> hue(0.5);
                case HostLayout.COMPRESSED -> "#8d6e63";
                case HostLayout.HOLE -> "#f2f2f2";
                case HostLayout.UNREFERENCED -> "#9e9e9e";
                default -> METADATA_COLOURS[m++ % METADATA_COLOURS.length];
            });
        }
        return c;
    }

    private static boolean isMetadata(String kind) {
        return !List.of(HostLayout.DATA, HostLayout.COMPRESSED, HostLayout.HOLE, HostLayout.UNREFERENCED)
                .contains(kind);
    }

    /** Blue (guest offset 0) to red (the end of the disk), in 32 steps so neighbouring bins merge. */
    static String hue(double fraction) {
        double step = Math.floor(Math.min(0.999, Math.max(0, fraction)) * 32) / 31.0;
        // HSV to RGB, saturation 0.75, value 0.85, hue from 240 degrees (blue) down to 0 (red)
        double h = 4 * (1 - step);
        double v = 0.85;
        double sat = 0.75;
        int sector = (int) Math.floor(h) % 6;
        double f = h - Math.floor(h);
        double p = v * (1 - sat);
        double q = v * (1 - sat * f);
        double t = v * (1 - sat * (1 - f));
        double[] rgb = switch (sector) {
            case 0 -> new double[]{v, t, p};
            case 1 -> new double[]{q, v, p};
            case 2 -> new double[]{p, v, t};
            case 3 -> new double[]{p, q, v};
            default -> new double[]{t, p, v};
        };
        return String.format("#%02x%02x%02x", Math.round(rgb[0] * 255), Math.round(rgb[1] * 255),
                Math.round(rgb[2] * 255));
    }

    public static String svg(HostLayout l) {
        Map<String, String> colour = colours(l);
        int rows = Math.ceilDiv(l.bins, COLUMNS);
        double plotBottom = TOP + rows * (ROW_HEIGHT + ROW_GAP);
        List<String> shown = new ArrayList<>();
        for (String k : l.kinds) {
            if (l.totals.get(k) > 0) {
                shown.add(k);
            }
        }
        double legendTop = plotBottom + 16;
        double height = legendTop + 22 * shown.size() + 44;
        double bytesPerArea = l.binBytes / (BIN_WIDTH * ROW_HEIGHT);
        StringBuilder s = new StringBuilder(64 * 1024);
        s.append(String.format(Locale.ROOT, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" "
                + "height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\" font-size=\"11\" "
                + "data-bin-bytes=\"%d\" data-bytes-per-area=\"%s\">%n", WIDTH, height, WIDTH, height, l.binBytes,
                Double.toString(bytesPerArea)));
        s.append("<title>").append(esc(l.file)).append(": layout of the host file</title>\n");
        s.append("<rect x=\"0\" y=\"0\" width=\"100%\" height=\"100%\" fill=\"white\"/>\n");
        s.append(String.format(Locale.ROOT, "<text x=\"%.0f\" y=\"20\" font-size=\"14\" font-weight=\"bold\">%s"
                + "</text>%n", LEFT, esc(l.file + " (" + l.format + ")")));
        s.append(String.format(Locale.ROOT, "<text x=\"%.0f\" y=\"38\">file %s (%d bytes), virtual size %s; "
                        + "each column %s, a row %s; left to right, top to bottom</text>%n", LEFT,
                Sizes.human(l.fileLength), l.fileLength, Sizes.human(l.virtualSize), Sizes.human(l.binBytes),
                Sizes.human(l.binBytes * COLUMNS)));
        for (int row = 0; row < rows; row++) {
            double y = TOP + row * (ROW_HEIGHT + ROW_GAP);
            s.append(String.format(Locale.ROOT, "<text x=\"%.0f\" y=\"%.1f\" text-anchor=\"end\" "
                    + "class=\"axis\">%s</text>%n", LEFT - 6, y + ROW_HEIGHT - 3, axisLabel(row * COLUMNS
                    * l.binBytes)));
            drawRow(s, l, colour, row, y, LEFT, COLUMNS, null);
        }
        // legend: kinds with their bytes, then the guest offset scale
        for (int i = 0; i < shown.size(); i++) {
            String k = shown.get(i);
            double y = legendTop + 22 * i;
            if (k.equals(HostLayout.DATA)) {
                for (int j = 0; j < 8; j++) {
                    s.append(String.format(Locale.ROOT, "<rect x=\"%.1f\" y=\"%.0f\" width=\"4\" height=\"14\" "
                            + "fill=\"%s\" class=\"legend\"/>%n", LEFT + 4 * j, y, hue(j / 7.0)));
                }
            } else {
                s.append(String.format(Locale.ROOT, "<rect x=\"%.0f\" y=\"%.0f\" width=\"32\" height=\"14\" "
                        + "fill=\"%s\" stroke=\"#777\" class=\"legend\"/>%n", LEFT, y, colour.get(k)));
            }
            s.append(String.format(Locale.ROOT, "<text x=\"%.0f\" y=\"%.0f\" data-kind=\"%s\" "
                    + "data-bytes=\"%d\">%s: %s (%d bytes)%s</text>%n", LEFT + 40, y + 11, esc(k),
                    l.totals.get(k), esc(k), Sizes.human(l.totals.get(k)), l.totals.get(k),
                    k.equals(HostLayout.DATA) ? ", coloured by guest offset: blue at 0, red at "
                            + Sizes.human(l.virtualSize)
                            : k.equals(HostLayout.COMPRESSED) ? ", deflated guest data in one colour (its guest "
                            + "offsets are not drawn)" : ""));
        }
        s.append("</svg>\n");
        return s.toString();
    }

    private static void drawRow(StringBuilder s, HostLayout l, Map<String, String> colour, int row, double y,
                                double left, int columns, String panel) {
        int first = row * columns;
        int last = Math.min(l.bins, first + columns);
        int runStart = first;
        String runKey = null;
        for (int b = first; b <= last; b++) {
            String key = b < last ? wholeKey(l, b, colour) : null;
            if (runKey != null && !runKey.equals(key)) {
                int kind = l.kinds.indexOf(runKey.substring(0, runKey.indexOf('|')));
                rect(s, l.kinds.get(kind), left + (runStart - first) * BIN_WIDTH, y, (b - runStart) * BIN_WIDTH,
                        ROW_HEIGHT, runKey.substring(runKey.indexOf('|') + 1), panel);
                runKey = null;
            }
            if (b == last) {
                break;
            }
            if (key != null) {
                if (runKey == null) {
                    runKey = key;
                    runStart = b;
                }
                continue;
            }
            // a mixed bin (or the short last bin): one bar per kind, stacked, heights in proportion
            double x = left + (b - first) * BIN_WIDTH;
            double at = y;
            for (int k = 0; k < l.kinds.size(); k++) {
                long n = l.bytes.get(k)[b];
                if (n == 0) {
                    continue;
                }
                double h = ROW_HEIGHT * n / l.binBytes;
                String fill = k == 0 ? hue(l.guestFraction(b)) : colour.get(l.kinds.get(k));
                rect(s, l.kinds.get(k), x, at, BIN_WIDTH, h, fill, panel);
                at += h;
            }
        }
    }

    /** "kind|colour" when bin {@code b} is whole and of one kind, else null. */
    private static String wholeKey(HostLayout l, int b, Map<String, String> colour) {
        for (int k = 0; k < l.kinds.size(); k++) {
            if (l.bytes.get(k)[b] == l.binBytes) {
                return l.kinds.get(k) + "|" + (k == 0 ? hue(l.guestFraction(b)) : colour.get(l.kinds.get(k)));
            }
        }
        return null;
    }

    private static void rect(StringBuilder s, String kind, double x, double y, double w, double h, String fill,
                             String panel) {
        s.append(String.format(Locale.ROOT, "<rect x=\"%.4f\" y=\"%.4f\" width=\"%.4f\" height=\"%.6f\" "
                + "fill=\"%s\" data-kind=\"%s\"%s/>%n", x, y, w, h, fill, esc(kind),
                panel == null ? "" : " data-panel=\"" + panel + "\""));
    }

    /** A move of guest data for the before/after picture: bytes from one host offset to another. */
    public record Move(long fromHost, long toHost, long bytes) {
    }

    /** The most moves drawn as lines (the largest, after grouping by the bins they join). */
    static final int MAX_MOVE_LINES = 64;

    /**
     * The file before and after an in-place conversion, side by side, in
     * bins of the same size; lines join where moved data is and where it
     * goes (grouped by bin pairs, the largest {@link #MAX_MOVE_LINES}).
     */
    public static String pair(HostLayout before, HostLayout after, List<Move> moves, String title) {
        if (before.binBytes != after.binBytes) {
            throw new IllegalArgumentException("the two pictures must share their bin size");
        }
        int columns = COLUMNS / 2;
        double panelWidth = columns * BIN_WIDTH;
        double rightLeft = LEFT + panelWidth + LEFT;
        double width = rightLeft + panelWidth + 20;
        int rows = Math.max(Math.ceilDiv(before.bins, columns), Math.ceilDiv(after.bins, columns));
        double plotBottom = TOP + rows * (ROW_HEIGHT + ROW_GAP);
        List<String> kinds = new ArrayList<>();
        for (HostLayout l : List.of(before, after)) {
            for (String k : l.kinds) {
                if (l.totals.get(k) > 0 && !kinds.contains(k)) {
                    kinds.add(k);
                }
            }
        }
        Map<String, String> colour = colours(before);
        int extra = (int) before.kinds.stream().filter(LayoutSvg::isMetadata).count();
        for (String k : after.kinds) {
            if (!colour.containsKey(k)) {
                colour.put(k, METADATA_COLOURS[extra++ % METADATA_COLOURS.length]);
            }
        }
        double legendTop = plotBottom + 16;
        double height = legendTop + 22 * kinds.size() + 30;
        StringBuilder s = new StringBuilder(128 * 1024);
        s.append(String.format(Locale.ROOT, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" "
                + "height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\" font-size=\"11\" "
                + "data-bin-bytes=\"%d\" data-bytes-per-area=\"%s\">%n", width, height, width, height,
                before.binBytes, Double.toString(before.binBytes / (BIN_WIDTH * ROW_HEIGHT))));
        s.append("<title>").append(esc(title)).append("</title>\n");
        s.append("<rect x=\"0\" y=\"0\" width=\"100%\" height=\"100%\" fill=\"white\"/>\n");
        s.append(String.format(Locale.ROOT, "<text x=\"%.0f\" y=\"20\" font-size=\"14\" "
                + "font-weight=\"bold\">%s</text>%n", LEFT, esc(title)));
        int i = 0;
        for (HostLayout l : List.of(before, after)) {
            double left = i == 0 ? LEFT : rightLeft;
            String panel = i++ == 0 ? "before" : "after";
            s.append(String.format(Locale.ROOT, "<text x=\"%.0f\" y=\"40\">%s: %s, %s (%d bytes); each column "
                    + "%s</text>%n", left, panel, esc(l.format), Sizes.human(l.fileLength), l.fileLength,
                    Sizes.human(l.binBytes)));
            for (int row = 0; row * columns < l.bins; row++) {
                double y = TOP + row * (ROW_HEIGHT + ROW_GAP);
                s.append(String.format(Locale.ROOT, "<text x=\"%.0f\" y=\"%.1f\" text-anchor=\"end\" "
                        + "class=\"axis\">%s</text>%n", left - 6, y + ROW_HEIGHT - 3,
                        axisLabel(row * columns * l.binBytes)));
                drawRow(s, l, colour, row, y, left, columns, panel);
            }
        }
        // moves: grouped by the bins they join, the largest drawn
        Map<Long, long[]> groups = new java.util.HashMap<>();
        for (Move m : moves) {
            long from = m.fromHost() / before.binBytes;
            long to = m.toHost() / before.binBytes;
            groups.computeIfAbsent(from * (1L << 31) + to, k -> new long[]{from, to, 0})[2] += m.bytes();
        }
        List<long[]> lines = new ArrayList<>(groups.values());
        lines.sort((a, b) -> Long.compare(b[2], a[2]));
        long largest = lines.isEmpty() ? 1 : lines.getFirst()[2];
        for (long[] g : lines.subList(0, Math.min(MAX_MOVE_LINES, lines.size()))) {
            double x1 = LEFT + (g[0] % columns + 0.5) * BIN_WIDTH;
            double y1 = TOP + (g[0] / columns) * (ROW_HEIGHT + ROW_GAP) + ROW_HEIGHT / 2;
            double x2 = rightLeft + (g[1] % columns + 0.5) * BIN_WIDTH;
            double y2 = TOP + (g[1] / columns) * (ROW_HEIGHT + ROW_GAP) + ROW_HEIGHT / 2;
            s.append(String.format(Locale.ROOT, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" "
                    + "stroke=\"black\" stroke-opacity=\"0.45\" stroke-width=\"%.2f\" class=\"move\" "
                    + "data-bytes=\"%d\"/>%n", x1, y1, x2, y2, 0.5 + 2.5 * g[2] / largest, g[2]));
        }
        long movedTotal = moves.stream().mapToLong(Move::bytes).sum();
        for (int k = 0; k < kinds.size(); k++) {
            String kind = kinds.get(k);
            double y = legendTop + 22 * k;
            s.append(String.format(Locale.ROOT, "<rect x=\"%.0f\" y=\"%.0f\" width=\"32\" height=\"14\" "
                    + "fill=\"%s\" stroke=\"#777\" class=\"legend\"/>%n", LEFT, y,
                    kind.equals(HostLayout.DATA) ? hue(0.5) : colour.get(kind)));
            s.append(String.format(Locale.ROOT, "<text x=\"%.0f\" y=\"%.0f\">%s: %s before, %s after%s</text>%n",
                    LEFT + 40, y + 11, esc(kind), Sizes.human(before.totals.getOrDefault(kind, 0L)),
                    Sizes.human(after.totals.getOrDefault(kind, 0L)), kind.equals(HostLayout.DATA)
                            ? " (coloured by guest offset; lines: " + Sizes.human(movedTotal) + " moved)" : ""));
        }
        s.append("</svg>\n");
        return s.toString();
    }

    private static String axisLabel(long offset) {
        return offset == 0 ? "0" : Sizes.human(offset);
    }

    /** An HTML page around the SVG, with the totals as a table. */
    public static String html(HostLayout l) {
        StringBuilder s = new StringBuilder();
        s.append("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>").append(esc(l.file))
                .append(": layout</title></head>\n<body style=\"font-family: sans-serif\">\n");
        s.append(svg(l));
        s.append("<table>\n<tr><th align=\"left\">kind</th><th align=\"right\">bytes</th></tr>\n");
        for (Map.Entry<String, Long> e : l.totals.entrySet()) {
            if (e.getValue() > 0) {
                s.append("<tr><td>").append(esc(e.getKey())).append("</td><td align=\"right\">").append(e.getValue())
                        .append("</td></tr>\n");
            }
        }
        s.append("</table>\n</body></html>\n");
        return s.toString();
    }

    static String esc(String t) {
        return t.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\"", "&quot;");
    }
}
