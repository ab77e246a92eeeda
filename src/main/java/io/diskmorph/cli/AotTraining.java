package io.diskmorph.cli;

import io.diskmorph.image.FormatRegistry;
import io.diskmorph.image.ImageFormat;
import io.diskmorph.image.LayoutTarget;
import io.diskmorph.storage.FileStorage;
import io.diskmorph.storage.LockMode;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

/**
 * The training runs of the launcher's ahead-of-time caches (JDK 25, JEP 483,
 * 514, 515), one cache per command: the command is run on small images of
 * every format with its usual options, so its cache holds what any command
 * line of it loads and links (every image format, the copy engine, in-place
 * conversion, the native calls, JSON output), not only what the first
 * command line a user happened to run needed. Run by the launcher in the
 * background; not a user command.
 *
 * <p>Usage: {@code AotTraining DIR setup} makes the sample images in DIR
 * (a scratch directory; not recorded, so the setup's classes stay out of
 * the cache); {@code AotTraining DIR COMMAND} then runs COMMAND's training
 * under {@code -XX:AOTCacheOutput}. The launcher removes DIR.
 */
public final class AotTraining {
    private static final List<String> FAILURES = new ArrayList<>();

    private AotTraining() {
    }

    /**
     * Every format with a driver that writes, from the registry: a new driver is trained without an edit
     * here. (The sample disk is converted into each; a driver that only reads, VMDK for now, has no sample
     * and loads its classes on first use.)
     */
    private static List<ImageFormat> formats() {
        return FormatRegistry.formats().stream().filter(f -> f.supported() && f.canWrite()).toList();
    }

    private static List<String> names(java.util.function.Predicate<ImageFormat> which) {
        return formats().stream().filter(which).map(ImageFormat::name).toList();
    }

    private static boolean hasOption(ImageFormat f, String option) {
        return f.createOptions().stream().anyMatch(o -> o.name().equals(option));
    }

    /** The format of the sample disk: the one without metadata, what a file is when nothing else is. */
    private static String plain() {
        return FormatRegistry.plainFormat().name();
    }

    /** A format that holds backing files (for the overlay), or null. */
    private static String overlayFormat() {
        return names(f -> hasOption(f, "backing_file")).stream().findFirst().orElse(null);
    }

    public static void main(String[] args) throws IOException {
        if (args.length != 2) {
            System.err.println("usage: AotTraining SCRATCH-DIR setup|COMMAND");
            System.exit(2);
        }
        Path dir = Path.of(args[0]);
        if (args[1].equals("setup")) {
            setup(dir);
        } else {
            train(dir, args[1]);
        }
        for (String f : FAILURES) {
            System.err.println("diskmorph AOT training: " + f);
        }
    }

    /** The sample disk (data, written zeros, holes) in every format, and an overlay of it. */
    private static void setup(Path dir) throws IOException {
        Files.createDirectories(dir);
        Path plain = Path.of(image(dir, plain()));
        sample(plain, 24L << 20);
        for (String f : names(f -> !f.name().equals(plain()))) {
            run("convert", "-f", plain(), "-O", f, plain.toString(), image(dir, f));
        }
        String over = overlayFormat();
        if (over != null) {
            run("create", "-q", "-f", over, "-b", "disk." + over, "-F", over, overlay(dir));
        }
        Files.writeString(dir.resolve("not-an-image.img"), "text\n");
    }

    private static String image(Path dir, String format) {
        return dir.resolve("disk." + format).toString();
    }

    private static String overlay(Path dir) {
        return dir.resolve("overlay." + overlayFormat()).toString();
    }

    private static void train(Path dir, String command) throws IOException {
        List<String> all = names(f -> true);
        List<String> targets = names(f -> f instanceof LayoutTarget); // in-place targets
        String over = overlayFormat();
        switch (command) {
            case "info", "map", "check" -> {
                for (String f : all) {
                    run(command, image(dir, f));
                    run(command, "--output=json", image(dir, f));
                }
                if (over != null) {
                    run(command, overlay(dir));
                }
            }
            case "completion" -> run("completion", "bash");
            case "layout" -> {
                for (String f : all) {
                    run("layout", image(dir, f));
                }
            }
            case "compare" -> {
                for (String a : all) {
                    for (String b : all) {
                        run("compare", image(dir, a), image(dir, b));
                    }
                }
            }
            case "measure" -> {
                for (String from : all) {
                    for (String to : names(f -> f instanceof io.diskmorph.image.MeasurableFormat)) {
                        run("measure", "-O", to, image(dir, from));
                        if (targets.contains(to)) {
                            run("measure", "-O", to, "--in-place", "--output=json", image(dir, from));
                        }
                    }
                    if (FormatRegistry.byName(from) instanceof io.diskmorph.image.MeasurableFormat) {
                        run("measure", "-O", from, "--size", "1G"); // VMDK, like qemu, has no measure
                    }
                }
            }
            case "create" -> {
                for (ImageFormat f : formats()) {
                    run("create", "-f", f.name(), dir.resolve("new." + f.name()).toString(), "64M");
                    if (hasOption(f, "cluster_size")) {
                        run("create", "-f", f.name(), "-o", "cluster_size=4k", dir.resolve("opts." + f.name())
                                .toString(), "64M");
                    }
                    if (hasOption(f, "backing_file")) { // over the sample in its own format (VMDK takes no other)
                        run("create", "-f", f.name(), "-b", "disk." + f.name(), "-F", f.name(),
                                dir.resolve("new-overlay." + f.name()).toString());
                    }
                }
            }
            case "convert" -> {
                for (String from : all) {
                    for (String to : all) {
                        run("convert", "-f", from, "-O", to, image(dir, from), dir.resolve("copy-" + from + "." + to)
                                .toString());
                    }
                }
                for (ImageFormat f : formats()) { // compressed targets, every compression type they offer
                    if (hasOption(f, "compression_type")) {
                        run("convert", "-O", f.name(), "-c", "--progress=json", image(dir, plain()),
                                dir.resolve("deflate." + f.name()).toString());
                        run("convert", "-O", f.name(), "-o", "compression_type=zstd", "-c", image(dir, plain()),
                                dir.resolve("zstd." + f.name()).toString());
                    }
                }
                if (over != null) {
                    run("convert", "-O", over, "-B", "disk." + over, "-F", over, overlay(dir),
                            dir.resolve("diff." + over).toString());
                }
                // in place around the targets, from the plain sample, with a rollback record on the way
                String ip = image(dir, plain());
                String previous = plain();
                for (String to : targets) {
                    run("convert", "--in-place", "--dry-run", "-f", previous, "-O", to, ip);
                    run("convert", "--in-place", "--keep-rollback", "-f", previous, "-O", to, ip);
                    run("rollback", ip);
                    run("convert", "--in-place", "--output=json", "-f", previous, "-O", to, ip);
                    previous = to;
                }
            }
            case "rollback", "recover" -> {
                for (String from : targets) {
                    for (String to : targets) {
                        if (!from.equals(to)) {
                            String ip = dir.resolve("rb-" + from + "-" + to).toString();
                            run("convert", "-O", from, image(dir, plain()), ip);
                            run("convert", "--in-place", "-O", to, "--keep-rollback", ip);
                            run(command, ip);
                        }
                    }
                }
            }
            default -> run(command.startsWith("-") ? command : "--help");
        }
        run(command, dir.resolve("not-an-image.img").toString()); // the shared error path
    }

    /** Runs one command line; a failure is noted (the training goes on: a cache of the rest still helps). */
    private static void run(String... args) {
        StringWriter sink = new StringWriter();
        int rc;
        try (PrintWriter out = new PrintWriter(sink); PrintWriter err = new PrintWriter(sink)) {
            rc = Main.run(args, out, err);
        }
        boolean expected = String.join(" ", args).contains("not-an-image")
                || args[0].equals("check") && rc == io.diskmorph.image.ExitCodes.CHECK_UNSUPPORTED; // raw: nothing to check
        if (rc != 0 && !expected) {
            FAILURES.add(String.join(" ", args) + " -> exit " + rc + ": " + sink.toString().strip());
        }
    }

    /** Command lines of the last runs that failed (tests: the training must exercise the working paths). */
    static List<String> failures() {
        return List.copyOf(FAILURES);
    }

    /** Runs {@code setup}, then the training of each command, in {@code dir} (tests). */
    static void trainAll(Path dir, List<String> commands) throws IOException {
        FAILURES.clear();
        setup(dir);
        for (String c : commands) {
            train(dir, c);
        }
    }

    /** A sparse raw disk: data, written zeros and holes, like a lightly used guest disk. */
    private static void sample(Path image, long size) throws IOException {
        try (FileStorage s = FileStorage.create(image, LockMode.EXCLUSIVE)) {
            s.truncate(size);
            Random rnd = new Random(7);
            ByteBuffer buf = ByteBuffer.allocate(1 << 20);
            for (long pos = 0; pos + buf.capacity() <= size; pos += 3L << 20) {
                rnd.nextBytes(buf.array());
                buf.clear();
                s.write(buf, pos);
            }
            s.write(ByteBuffer.allocate(256 << 10), 2L << 20);
        }
    }
}
