package io.diskmorph.fuzz;

import io.diskmorph.testing.Dm;

import java.nio.file.Path;

import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;

import static org.junit.jupiter.api.Assertions.fail;

/**
 * Runs one CLI command on a hostile image under a time bound (no hang) and an
 * allocation bound (no out-of-memory: what the command allocates in total,
 * measured on its thread, stays below QEMU-like caps plus a multiple of the
 * file's length; the file may be sparse, so its length, not its content).
 */
final class Bounded {
    static final long SECONDS = 60;
    /** Larger (sparse) files are run in a JVM of their own with a small heap instead. */
    static final long MAX_IN_PROCESS = 16L << 20;

    private Bounded() {
    }

    static Dm.Result cli(long fileLength, Object... args) {
        AtomicReference<Dm.Result> result = new AtomicReference<>();
        AtomicReference<Throwable> failure = new AtomicReference<>();
        AtomicLong allocated = new AtomicLong();
        Thread t = new Thread(() -> {
            long start = Harness.allocatedBytes();
            try {
                result.set(Dm.run(args));
            } catch (Throwable e) {
                failure.set(e);
            } finally {
                allocated.set(Harness.allocatedBytes() - start);
            }
        }, "bounded-cli");
        t.setDaemon(true);
        t.start();
        try {
            t.join(SECONDS * 1000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            fail("interrupted");
        }
        if (t.isAlive()) {
            fail("diskmorph " + java.util.Arrays.toString(args) + " did not finish within " + SECONDS + " s");
        }
        if (failure.get() != null) {
            throw new AssertionError("diskmorph " + java.util.Arrays.toString(args) + " threw", failure.get());
        }
        if (fileLength > MAX_IN_PROCESS) {
            throw new IllegalArgumentException("use inSmallHeap for files over " + MAX_IN_PROCESS + " bytes");
        }
        long bound = Harness.ALLOCATION_BASE + Harness.ALLOCATION_PER_FILE_BYTE * fileLength;
        if (allocated.get() > bound) {
            fail(String.format("diskmorph %s allocated %d bytes (bound %d)", java.util.Arrays.toString(args),
                    allocated.get(), bound));
        }
        return result.get();
    }

    /**
     * Runs the CLI in a JVM of its own whose heap is {@code heapMiB}: for big
     * sparse files, where the total allocated on a thread (garbage included)
     * says nothing, this is the real out-of-memory test.
     */
    static Dm.Result inSmallHeap(int heapMiB, Object... args) {
        java.util.List<String> cmd = new java.util.ArrayList<>(java.util.List.of(
                Path.of(System.getProperty("java.home"), "bin", "java").toString(), "-Xmx" + heapMiB + "m",
                "--enable-native-access=ALL-UNNAMED", "-cp", System.getProperty("java.class.path"),
                "io.diskmorph.cli.Main"));
        for (Object a : args) {
            cmd.add(String.valueOf(a));
        }
        try {
            Process p = new ProcessBuilder(cmd).redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")))
                    .start();
            java.util.concurrent.CompletableFuture<String> err = drain(p.getErrorStream());
            java.util.concurrent.CompletableFuture<String> out = drain(p.getInputStream());
            if (!p.waitFor(SECONDS, java.util.concurrent.TimeUnit.SECONDS)) {
                p.destroyForcibly();
                fail("diskmorph " + args[0] + " did not finish within " + SECONDS + " s");
            }
            return new Dm.Result(p.exitValue(), out.join(), err.join());
        } catch (java.io.IOException e) {
            throw new AssertionError(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError(e);
        }
    }

    private static java.util.concurrent.CompletableFuture<String> drain(java.io.InputStream in) {
        return java.util.concurrent.CompletableFuture.supplyAsync(() -> {
            try {
                return new String(in.readAllBytes(), java.nio.charset.StandardCharsets.UTF_8);
            } catch (java.io.IOException e) {
                return "";
            }
        });
    }
}
