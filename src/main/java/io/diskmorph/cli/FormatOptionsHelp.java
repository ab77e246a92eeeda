package io.diskmorph.cli;

import io.diskmorph.image.FormatRegistry;
import io.diskmorph.image.ImageFormat;
import io.diskmorph.image.ImageException;
import io.diskmorph.image.LayoutTarget;
import io.diskmorph.image.UnsupportedFeatureException;

import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * '-o help' (create, convert, measure): a format's create options, and for
 * the commands with --in-place what an in-place conversion does with each,
 * asked of the format itself ({@link LayoutTarget#notInPlace}, which the
 * converter enforces), so the text cannot drift from what happens.
 */
final class FormatOptionsHelp {
    private FormatOptionsHelp() {
    }

    /** Whether one of the -o arguments asks for help ("help" or "?" as an item, as qemu-img takes it). */
    static boolean asked(List<String> options) {
        if (options != null) {
            for (String o : options) {
                for (String item : o.split(",")) {
                    if (item.equals("help") || item.equals("?")) {
                        return true;
                    }
                }
            }
        }
        return false;
    }

    static void print(PrintWriter out, String format, boolean inPlace) throws ImageException {
        ImageFormat f = FormatRegistry.byName(format);
        if (!f.supported()) {
            throw new UnsupportedFeatureException(f.name() + " images are not supported yet: no options to list");
        }
        if (!f.canWrite()) {
            throw f.writingNotSupported(); // no image to create: no options to list
        }
        out.println("Supported options for " + f.name() + ":");
        for (ImageFormat.OptionHelp h : f.createOptions()) {
            out.printf("  %-24s - %s%n", h.name(), h.description());
        }
        if (!inPlace) {
            return;
        }
        if (f.name().equals("raw")) {
            out.println("--in-place: raw takes no options; every guest unit is moved to its guest offset (qcow2 "
                    + "and QED sources), with no rollback record (the way back is an in-place conversion to the "
                    + "source format).");
            return;
        }
        if (f instanceof io.diskmorph.image.TrailerFormat) {
            out.println("--in-place: from a raw file only: " + f.name() + " describes it by a trailer appended after "
                    + "the data (nothing moves; a rollback cuts it off); the options as above, judged against the "
                    + "raw file's size.");
            return;
        }
        if (!(f instanceof LayoutTarget target)) {
            out.println("--in-place: " + f.name() + " cannot be the target of an in-place conversion.");
            return;
        }
        List<String> taken = new ArrayList<>();
        Map<String, List<String>> refused = new LinkedHashMap<>(); // reason -> options
        for (ImageFormat.OptionHelp h : f.createOptions()) {
            String why = target.notInPlace(h.name());
            if (why == null) {
                taken.add(h.name());
            } else {
                refused.computeIfAbsent(why, k -> new ArrayList<>()).add(h.name());
            }
        }
        out.println("--in-place builds " + f.name() + " with the code create uses, around the data in the file:");
        out.println("  takes:   " + (taken.isEmpty() ? "none of them" : String.join(", ", taken)));
        out.println("           (options not given follow the source image where " + f.name() + " can use them)");
        String label = "  refuses: ";
        for (Map.Entry<String, List<String>> e : refused.entrySet()) {
            out.println(label + String.join(", ", e.getValue()) + " - " + e.getKey());
            label = "           ";
        }
    }
}
