package io.diskmorph.cli;

import io.diskmorph.convert.ConversionFile;
import io.diskmorph.convert.ConversionPlan;
import io.diskmorph.convert.InPlaceConverter;
import io.diskmorph.convert.Recovery;
import io.diskmorph.image.ChainMap;
import io.diskmorph.image.CheckReport;
import io.diskmorph.image.DiskImage;
import io.diskmorph.image.ImageException;
import io.diskmorph.image.Images;
import io.diskmorph.image.OpenOptions;
import io.diskmorph.image.RepairMode;
import io.diskmorph.image.Sizes;
import io.diskmorph.storage.FileStorage;
import io.diskmorph.storage.LockMode;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;

/**
 * The main job in one command: makes a sample disk with data, converts it in
 * place raw -> qcow2 (with a rollback record), rolls that back to the
 * byte-identical raw file, converts raw -> qcow2 -> qed -> qcow2, prints what
 * moved and why, and proves after each step that the guest content is the
 * same and the image checks clean (with qemu-img too, when installed).
 */
final class DemoCommand implements Cli.Command {
    private Cli.CommandSpec spec;
    String size = "1G";
    boolean keep;
    OutputFormat output = OutputFormat.human;

    private PrintWriter out;
    /** Each step's figures, for --output=json. */
    private final List<Map<String, Object>> steps = new ArrayList<>();

    @Override
    public Cli.Declaration declare(Cli.CommandSpec io) {
        spec = io;
        return new Cli.Declaration("demo", "Create a sample image, convert it in place several times, verify "
                + "each step.")
                .option("--size", "SIZE", "Virtual size (default 1G).", v -> size = v)
                .flag("--keep", "Keep the temporary directory and print its path.", () -> keep = true)
                .option("--output", "human|json", "Report format: the steps as they happen, or one JSON object "
                        + "with every step's figures at the end.",
                        v -> output = Cli.choice(OutputFormat.class, v, "--output"));
    }

    @Override
    public Integer call() throws Exception {
        boolean json = output == OutputFormat.json;
        out = json ? new PrintWriter(java.io.Writer.nullWriter()) : spec.getOut();
        long virtualSize = Sizes.parse(size);
        Path dir = Files.createTempDirectory("diskmorph-demo-");
        Path image = dir.resolve("disk.img");
        Cleanup cleanup = new Cleanup(dir, keep, spec.getErr());
        try {
            out.printf("diskmorph demo in %s%n", dir);
            out.flush();
            long written = makeSample(image, virtualSize);
            String digest = guestDigest(image);
            long sampleOnDisk = allocated(image);
            out.printf("1. sample raw disk: %s virtual, %s of data written (file uses %s on disk)%n",
                    Sizes.human(virtualSize), Sizes.human(written), Sizes.human(Files.size(image) > 0
                            ? allocated(image) : 0));
            out.printf("   guest content SHA-256 %s%n", digest.substring(0, 16));
            out.flush(); // each step as it happens, also through a pipe

            // raw -> qcow2 keeps every data cluster where it is (only the one in the header's cluster moves);
            // rolled back, the raw file is back byte for byte; then on to QED (which must move the data that
            // lies above its free space down: it may hold none) and back to qcow2, where nothing moves
            String rawFile = fileDigest(image);
            step(2, image, "raw", "qcow2", true, digest);

            long t0 = System.nanoTime();
            try (ConversionFile file = ConversionFile.open(image, LockMode.EXCLUSIVE, null)) {
                Recovery.rollback(file);
            }
            double rb = (System.nanoTime() - t0) / 1e9;
            if (!fileDigest(image).equals(rawFile)) {
                throw new ImageException("demo: rollback did not restore the raw file byte for byte");
            }
            Map<String, Object> rollback = new LinkedHashMap<>();
            rollback.put("step", 3);
            rollback.put("action", "rollback");
            rollback.put("source-format", "qcow2");
            rollback.put("target-format", "raw");
            rollback.put("seconds", round(rb));
            rollback.put("byte-identical", true);
            steps.add(rollback);
            out.printf(Locale.ROOT, "3. rollback qcow2 -> raw: %.3f s; the raw file is back byte for byte%n", rb);
            out.flush();
            step(4, image, "raw", "qcow2", false, digest);
            step(5, image, "qcow2", "qed", false, digest);
            step(6, image, "qed", "qcow2", false, digest);
            out.printf("The qcow2 file uses %s on disk (the raw sample used %s).%n", Sizes.human(allocated(image)),
                    Sizes.human(sampleOnDisk));
            out.println("All steps verified: same guest content after every conversion, images check clean.");
            if (json) {
                Map<String, Object> m = new LinkedHashMap<>();
                m.put("directory", dir.toString());
                m.put("kept", keep);
                m.put("virtual-size", virtualSize);
                m.put("sample-data-bytes", written);
                m.put("sample-actual-size", sampleOnDisk);
                m.put("guest-sha256", digest);
                m.put("steps", steps);
                m.put("format", "qcow2");
                m.put("actual-size", allocated(image));
                m.put("verified", true);
                spec.getOut().println(Json.pretty(m));
            }
            return 0;
        } finally {
            cleanup.finish(out);
        }
    }

    /**
     * Removes the demo's directory at the end, or when the process is
     * interrupted (SIGINT, SIGTERM: a shutdown hook, as copy.PartFile does);
     * with --keep it stays and its path is printed.
     */
    private static final class Cleanup {
        private final Path dir;
        private final boolean keep;
        private final PrintWriter err;
        private final Thread hook;
        private boolean done; // guarded by this: the directory was dealt with
        private volatile boolean interrupted;

        Cleanup(Path dir, boolean keep, PrintWriter err) {
            this.dir = dir;
            this.keep = keep;
            this.err = err;
            hook = new Thread(this::interrupted, "diskmorph-demo-interrupt");
            Runtime.getRuntime().addShutdownHook(hook);
        }

        private void interrupted() {
            interrupted = true;
            synchronized (this) {
                if (done) {
                    return;
                }
                done = true;
                if (keep) {
                    err.println("diskmorph: interrupted: kept " + dir);
                } else {
                    // the demo may still be writing in it (the JVM stops its threads only after the hooks)
                    IOException failure = null;
                    for (int attempt = 0; attempt < 50 && Files.exists(dir); attempt++) {
                        try {
                            deleteTree(dir);
                        } catch (IOException e) {
                            failure = e;
                            sleep(20);
                        }
                    }
                    err.println(Files.exists(dir) ? "diskmorph: interrupted: could not remove " + dir + ": "
                            + (failure != null ? failure.getMessage() : "still there")
                            : "diskmorph: interrupted: removed the demo directory " + dir);
                }
                err.flush();
            }
        }

        /** At the end of the demo, whatever its outcome. */
        void finish(PrintWriter out) throws IOException {
            boolean shuttingDown = false;
            synchronized (this) {
                if (!done) {
                    done = true;
                    try {
                        Runtime.getRuntime().removeShutdownHook(hook);
                    } catch (IllegalStateException e) {
                        shuttingDown = true; // the hook has started and will find the work done
                    }
                    if (keep) {
                        out.println("kept " + dir);
                    } else {
                        deleteTree(dir);
                    }
                }
            }
            if (interrupted || shuttingDown) {
                // returning would let Main halt the JVM with our exit code while the hook still runs: the JVM
                // ends once the hooks are done, with the signal's code (130, 143)
                while (true) {
                    try {
                        Thread.sleep(1000);
                    } catch (InterruptedException e) {
                        // still waiting for the JVM to end
                    }
                }
            }
        }

        private static void sleep(long ms) {
            try {
                Thread.sleep(ms);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }

    private void step(int n, Path image, String from, String to, boolean keepRollback, String digest)
            throws IOException {
        Path picture = image.resolveSibling("step-" + n + "-" + from + "-to-" + to + ".svg");
        InPlaceConverter.Request request = new InPlaceConverter.Request(from, to, Map.of(), keepRollback);
        try (ConversionFile file = ConversionFile.open(image, LockMode.SHARED, null)) {
            InPlacePicture.write(file, request, InPlaceConverter.plan(file, request), image, from, picture);
        }
        long t0 = System.nanoTime();
        ConversionPlan p;
        try (ConversionFile file = ConversionFile.open(image, LockMode.EXCLUSIVE, null)) {
            p = InPlaceConverter.convert(file, new InPlaceConverter.Request(from, to, Map.of(), keepRollback),
                    InPlaceConverter.Progress.NONE);
        }
        double seconds = (System.nanoTime() - t0) / 1e9;
        boolean qemuChecked = verify(image, to, digest);
        String qemu = qemuChecked ? "; qemu-img check clean" : " (qemu-img not installed: skipped its check)";
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("step", n);
        m.put("action", "convert-in-place");
        m.put("source-format", from);
        m.put("target-format", to);
        m.put("seconds", round(seconds));
        m.put("kept-bytes", p.keptBytes());
        m.put("moved-bytes", p.movedBytesTotal());
        m.put("moved-by-reason", p.movedBytesByName());
        m.put("metadata-bytes", p.metadataBytes());
        m.put("extra-space", p.extraSpace());
        m.put("keep-rollback", keepRollback);
        m.put("notes", p.notes());
        m.put("qemu-img-check", qemuChecked ? "clean" : "not-installed");
        m.put("picture", picture.toString());
        steps.add(m);
        out.printf(Locale.ROOT, "%d. in place %s -> %s: %.3f s; kept %s in place, moved %s, wrote %s of metadata, "
                        + "extra space %s (%.3f%%)%s%n", n, from, to, seconds, Sizes.human(p.keptBytes()),
                Sizes.human(p.movedBytesTotal()), Sizes.human(p.metadataBytes()), Sizes.human(p.extraSpace()),
                100.0 * p.extraSpace() / p.virtualSize(), keepRollback ? ", rollback record kept" : "");
        for (java.util.Map.Entry<io.diskmorph.convert.MoveReason, Long> e : p.movedBytes().entrySet()) {
            out.printf("   moved %s: %s%n", Sizes.human(e.getValue()), e.getKey().text());
        }
        for (String note : p.notes()) {
            out.printf("   note: %s%n", note);
        }
        out.printf("   verified: guest content identical; diskmorph check clean%s%n", qemu);
        out.printf("   picture: %s%s%n", picture, keep ? "" : " (the file before and after, SVG; removed with the "
                + "directory at the end: --keep keeps it)");
        out.flush();
    }

    /** Checks content and consistency, with qemu-img's check too when it is installed (then true). */
    private boolean verify(Path image, String format, String digest) throws IOException {
        if (!guestDigest(image).equals(digest)) {
            throw new ImageException("demo: guest content changed after converting " + image);
        }
        try (DiskImage img = Images.open(image, OpenOptions.forReading().withFormat(format))) {
            CheckReport r = img.check(RepairMode.NONE); // every in-place target has checks
            if (!r.isClean()) {
                throw new ImageException("demo: check found problems in " + image);
            }
        }
        if (!onPath("qemu-img")) {
            return false;
        }
        int rc = run("qemu-img", "check", "-q", "-f", format, image.toString());
        if (rc != 0) {
            throw new ImageException("demo: qemu-img check " + image + " exited " + rc);
        }
        return true;
    }

    private static double round(double seconds) {
        return Math.round(seconds * 1000) / 1000.0;
    }

    /** A sparse raw disk with text, random data and holes, like a lightly used guest disk. */
    private static long makeSample(Path image, long virtualSize) throws IOException {
        long written = 0;
        try (FileStorage s = FileStorage.create(image, LockMode.EXCLUSIVE)) {
            s.truncate(virtualSize);
            Random rnd = new Random(42);
            ByteBuffer buf = ByteBuffer.allocate(1 << 20);
            byte[] text = "diskmorph demo: this sector holds guest data at its host offset\n".getBytes();
            for (long pos = 0; pos + buf.capacity() <= virtualSize; pos += 8L << 20) {
                rnd.nextBytes(buf.array());
                for (int i = 0; i + text.length <= 4096; i += text.length) {
                    System.arraycopy(text, 0, buf.array(), i, text.length);
                }
                buf.clear();
                s.write(buf, pos);
                written += buf.capacity();
            }
            s.sync();
        }
        return written;
    }

    /**
     * SHA-256 of the guest content in a canonical form that does not depend on
     * the format: every 64 KiB block that is not all zeros, with its index.
     * Blocks the mapping reports as zero are not read.
     */
    private static String guestDigest(Path image) throws IOException {
        MessageDigest md;
        try {
            md = MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
        int block = 1 << 16;
        try (DiskImage img = Images.open(image, OpenOptions.forReading())) {
            ByteBuffer buf = ByteBuffer.allocate(block);
            ByteBuffer index = ByteBuffer.allocate(8);
            byte[] zeros = new byte[block];
            for (long pos = 0; pos < img.virtualSize(); pos += block) {
                int n = (int) Math.min(block, img.virtualSize() - pos);
                var e = ChainMap.entryAt(img, pos, n);
                if (e.zero() && e.length() >= n) {
                    continue;
                }
                buf.clear().limit(n);
                img.read(buf, pos);
                if (java.util.Arrays.mismatch(buf.array(), 0, n, zeros, 0, n) < 0) {
                    continue;
                }
                md.update(index.clear().putLong(pos).flip());
                md.update(buf.array(), 0, n);
            }
        }
        return HexFormat.of().formatHex(md.digest());
    }

    private static String fileDigest(Path p) throws IOException {
        try {
            MessageDigest md = MessageDigest.getInstance("SHA-256");
            try (var in = Files.newInputStream(p)) {
                byte[] buf = new byte[1 << 20];
                for (int n; (n = in.read(buf)) > 0; ) {
                    md.update(buf, 0, n);
                }
            }
            return HexFormat.of().formatHex(md.digest());
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    private static long allocated(Path p) throws IOException {
        try (FileStorage s = FileStorage.open(p, true, LockMode.NONE)) {
            return Math.max(0, s.allocatedBytes());
        }
    }

    private static boolean onPath(String tool) {
        for (String d : System.getenv().getOrDefault("PATH", "").split(":")) {
            if (!d.isEmpty() && Files.isExecutable(Path.of(d, tool))) {
                return true;
            }
        }
        return false;
    }

    private static int run(String... cmd) throws IOException {
        try {
            Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(ProcessBuilder.Redirect.DISCARD)
                    .start();
            return p.waitFor();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted");
        }
    }

    private static void deleteTree(Path dir) throws IOException {
        try (var s = Files.walk(dir)) {
            for (Path p : s.sorted(java.util.Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(p);
            }
        }
    }
}
