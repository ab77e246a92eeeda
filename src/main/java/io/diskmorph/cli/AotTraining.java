package io.diskmorph.cli;

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
    private static final String[] FORMATS = {"raw", "qcow2", "qed"};
    private static final List<String> FAILURES = new ArrayList<>();

    private AotTraining() {
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

    /** disk.raw (data, written zeros, holes), the same in qcow2 and qed, and a qcow2 overlay. */
    private static void setup(Path dir) throws IOException {
        Files.createDirectories(dir);
        Path raw = dir.resolve("disk.raw");
        sample(raw, 24L << 20);
        for (String f : FORMATS) {
            if (!f.equals("raw")) {
                run("convert", "-f", "raw", "-O", f, raw.toString(), image(dir, f));
            }
        }
        run("create", "-q", "-f", "qcow2", "-b", "disk.qcow2", "-F", "qcow2", dir.resolve("overlay.qcow2").toString());
        Files.writeString(dir.resolve("not-an-image.qcow2"), "text\n");
    }

    private static String image(Path dir, String format) {
        return dir.resolve("disk." + format).toString();
    }

    private static void train(Path dir, String command) throws IOException {
        String overlay = dir.resolve("overlay.qcow2").toString();
        switch (command) {
            case "info", "map", "check" -> {
                for (String f : FORMATS) {
                    if (command.equals("check") && f.equals("raw")) {
                        continue; // raw has nothing to check (qemu-img says so too)
                    }
                    run(command, image(dir, f));
                    run(command, "--output=json", image(dir, f));
                }
                run(command, overlay);
            }
            case "compare" -> {
                for (String a : FORMATS) {
                    for (String b : FORMATS) {
                        run("compare", image(dir, a), image(dir, b));
                    }
                }
                run("compare", overlay, image(dir, "qcow2"));
            }
            case "measure" -> {
                for (String from : FORMATS) {
                    for (String to : FORMATS) {
                        run("measure", "-O", to, image(dir, from));
                        if (!to.equals("raw")) { // raw cannot be made in place: its data sits at guest offsets
                            run("measure", "-O", to, "--in-place", "--output=json", image(dir, from));
                        }
                    }
                }
                run("measure", "-O", "qcow2", "--size", "1G");
            }
            case "create" -> {
                for (String f : FORMATS) {
                    run("create", "-f", f, dir.resolve("new." + f).toString(), "64M");
                }
                run("create", "-f", "qcow2", "-o", "cluster_size=4k,lazy_refcounts=on",
                        dir.resolve("opts.qcow2").toString(), "64M");
                run("create", "-f", "qcow2", "-b", "disk.qed", "-F", "qed", dir.resolve("new-overlay.qcow2").toString());
            }
            case "convert" -> {
                for (String from : FORMATS) {
                    for (String to : FORMATS) {
                        run("convert", "-f", from, "-O", to, image(dir, from), dir.resolve("copy-" + from + "." + to)
                                .toString());
                    }
                }
                run("convert", "-O", "qcow2", "-c", "--progress=json", image(dir, "qcow2"),
                        dir.resolve("deflate.qcow2").toString());
                run("convert", "-O", "qcow2", "-o", "compression_type=zstd", "-c", image(dir, "qed"),
                        dir.resolve("zstd.qcow2").toString());
                run("convert", "-O", "qcow2", "-B", "disk.qcow2", "-F", "qcow2", overlay,
                        dir.resolve("diff.qcow2").toString());
                // in place around the formats, with a rollback record on the way
                String ip = image(dir, "raw");
                run("convert", "--in-place", "--dry-run", "-f", "raw", "-O", "qcow2", ip);
                run("convert", "--in-place", "-f", "raw", "-O", "qed", ip);
                run("convert", "--in-place", "-O", "qcow2", "--keep-rollback", ip);
                run("rollback", ip);
                run("convert", "--in-place", "-O", "qcow2", "--output=json", ip);
                run("convert", "--in-place", "-O", "qed", ip);
            }
            case "rollback", "recover" -> {
                String ip = image(dir, "qed");
                run("convert", "--in-place", "-O", "qcow2", "--keep-rollback", ip);
                run(command, ip);
            }
            default -> run(command.startsWith("-") ? command : "--help");
        }
        run(command, "-f", "qcow2", dir.resolve("not-an-image.qcow2").toString()); // the shared error path
    }

    /** Runs one command line; a failure is noted (the training goes on: a cache of the rest still helps). */
    private static void run(String... args) {
        StringWriter sink = new StringWriter();
        int rc;
        try (PrintWriter out = new PrintWriter(sink); PrintWriter err = new PrintWriter(sink)) {
            rc = Main.run(args, out, err);
        }
        if (rc != 0 && !String.join(" ", args).contains("not-an-image")) {
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
