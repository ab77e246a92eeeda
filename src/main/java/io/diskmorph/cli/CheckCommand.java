package io.diskmorph.cli;

import io.diskmorph.image.CheckReport;
import io.diskmorph.image.DiskImage;
import io.diskmorph.image.ExitCodes;
import io.diskmorph.image.Images;
import io.diskmorph.image.OpenOptions;
import io.diskmorph.image.PhaseProgress;
import io.diskmorph.image.RepairMode;
import io.diskmorph.image.UnsupportedFeatureException;
import io.diskmorph.storage.LockMode;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;

/**
 * qemu-img check: exit 0 clean, 1 check failed (or the image could not be
 * opened), 2 corruptions, 3 leaks only, 63 format without checks.
 */
final class CheckCommand implements Cli.Command, Main.FailureCode {
    private Cli.CommandSpec spec;
    private final ImageOptions image = new ImageOptions();
    private final ProgressOptions progress = new ProgressOptions();
    OutputFormat output = OutputFormat.human;
    String repair;
    boolean quiet;
    Path path;

    @Override
    public Cli.Declaration declare(Cli.CommandSpec io) {
        spec = io;
        return new Cli.Declaration("check", "Check image consistency, optionally repair (qemu-img check).")
                .mixin(image::declare)
                .option("--output", "human|json", "Output format.",
                        v -> output = Cli.choice(OutputFormat.class, v, "--output"))
                .option("-r", "leaks|all", "Repair leaks, or leaks and corruptions.", v -> repair = v)
                .flag("-q", "Quiet: print nothing, report through the exit code.", () -> quiet = true)
                .mixin(d -> progress.declare(d, "in bytes of what it walks: \"tables\" guest bytes whose mapping "
                        + "entries were judged, \"refcounts\" host bytes whose counts were compared (qcow2), "
                        + "\"grains\" guest bytes whose grains were judged (VMDK); \"repair\" with -r"))
                .parameters("IMAGE", 1, 1, v -> path = Cli.path(v, "IMAGE"));
    }

    @Override
    public int failureExitCode() {
        return ExitCodes.CHECK_FAILED;
    }

    @Override
    public Integer call() throws Exception {
        PrintWriter out = spec.getOut();
        PrintWriter err = spec.getErr();
        RepairMode mode = switch (repair == null ? "" : repair) {
            case "" -> RepairMode.NONE;
            case "leaks" -> RepairMode.LEAKS;
            case "all" -> RepairMode.ALL;
            default -> throw new Cli.ParameterException(
                    "-r must be 'leaks' or 'all', not '" + repair + "'");
        };
        OpenOptions opts = image.readOnly().withFollowBacking(false).withForCheck(true);
        if (mode != RepairMode.NONE) {
            opts = new OpenOptions(image.format, false, image.forceShare ? LockMode.NONE : LockMode.EXCLUSIVE,
                    false, false, true);
        }
        InPlaceProgressPrinter printer = progress.printer(err, quiet);
        try (DiskImage img = Images.open(path, opts)) {
            CheckReport r;
            try {
                r = img.check(mode, printer != null ? printer : PhaseProgress.NONE);
            } catch (UnsupportedFeatureException e) {
                if (!quiet) {
                    err.println("diskmorph: This image format does not support checks");
                }
                return ExitCodes.CHECK_UNSUPPORTED;
            } finally {
                if (printer != null) {
                    printer.endBar(); // the report starts on a line of its own
                }
            }
            if (!quiet) {
                for (String m : r.messages) {
                    err.println(m);
                }
            }
            if (r.failure != null) {
                // qemu-img prints no summary when the check itself fails
                err.println("diskmorph: Check failed: " + r.failure);
                return r.exitCode();
            }
            if (!quiet) {
                if (output == OutputFormat.json) {
                    out.println(Json.pretty(toJson(r, img)));
                } else {
                    human(out, r, mode);
                }
            }
            if (r.checkErrors > 0) {
                err.println("diskmorph: Check failed");
            }
            return r.exitCode();
        }
    }

    /**
     * The keys in the order qemu-img 7.2 prints them (the bucket order of its
     * QDict hash), each only when qemu prints it.
     */
    private Map<String, Object> toJson(CheckReport r, DiskImage img) {
        Map<String, Object> m = new LinkedHashMap<>();
        if (r.imageEndOffset > 0) {
            m.put("image-end-offset", r.imageEndOffset);
        }
        if (r.compressedClusters > 0) {
            m.put("compressed-clusters", r.compressedClusters);
        }
        if (r.totalClusters > 0) {
            m.put("total-clusters", r.totalClusters);
        }
        if (r.corruptions > 0) {
            m.put("corruptions", r.corruptions);
        }
        if (r.corruptionsFixed > 0) {
            m.put("corruptions-fixed", r.corruptionsFixed);
        }
        m.put("check-errors", r.checkErrors);
        if (r.leaks > 0) {
            m.put("leaks", r.leaks);
        }
        if (r.leaksFixed > 0) {
            m.put("leaks-fixed", r.leaksFixed);
        }
        if (r.allocatedClusters > 0) {
            m.put("allocated-clusters", r.allocatedClusters);
        }
        m.put("filename", path.toString());
        m.put("format", img.format().name());
        if (r.fragmentedClusters > 0) {
            m.put("fragmented-clusters", r.fragmentedClusters);
        }
        return m;
    }

    private static void human(PrintWriter out, CheckReport r, RepairMode mode) {
        if (r.repaired && (r.leaksFixed > 0 || r.corruptionsFixed > 0)) {
            out.printf("The following inconsistencies were found and repaired:%n%n"
                    + "    %d leaked clusters%n    %d corruptions%n%nDouble checking the fixed image now...%n",
                    r.leaksFixed, r.corruptionsFixed);
        }
        if (r.isClean()) {
            out.println("No errors were found on the image.");
        } else {
            if (r.corruptions > 0) {
                out.printf("%n%d errors were found on the image.%n"
                        + "Data may be corrupted, or further writes to the image may corrupt it.%n", r.corruptions);
            }
            if (r.leaks > 0) {
                out.printf("%n%d leaked clusters were found on the image.%n"
                        + "This means waste of disk space, but no harm to data.%n", r.leaks);
            }
            if (r.checkErrors > 0) {
                out.printf("%n%d internal errors have occurred during the check.%n", r.checkErrors);
            }
        }
        if (r.totalClusters > 0 && r.allocatedClusters > 0) {
            out.printf(Locale.ROOT, "%d/%d = %s%% allocated, %s%% fragmented, %s%% compressed clusters%n",
                    r.allocatedClusters, r.totalClusters, percent(100.0 * r.allocatedClusters / r.totalClusters),
                    percent(100.0 * Math.max(0, r.fragmentedClusters) / r.allocatedClusters),
                    percent(100.0 * Math.max(0, r.compressedClusters) / r.allocatedClusters));
        }
        if (r.imageEndOffset > 0) {
            out.println("Image end offset: " + r.imageEndOffset);
        }
    }

    /**
     * {@code p} with two decimals as C's printf("%.2f") prints it: the exact
     * binary value rounded, ties to even (2/64 is 3.12); Java's %.2f rounds
     * ties up (3.13). Exact without BigDecimal (whose set-up costs start-up
     * time): fma gives the error of p x 100.
     */
    static String percent(double p) {
        double s = p * 100;
        double err = Math.fma(p, 100, -s);
        double floor = Math.floor(s);
        double frac = s - floor;
        long n = (long) floor;
        int cmp = frac != 0.5 ? Double.compare(frac, 0.5) : Double.compare(err, 0.0);
        if (cmp > 0 || cmp == 0 && (n & 1) == 1) {
            n++;
        }
        return String.format(Locale.ROOT, "%d.%02d", n / 100, n % 100);
    }
}
