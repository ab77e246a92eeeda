package example.inplace;

import io.diskmorph.api.Cancellation;
import io.diskmorph.api.Diskmorph;
import io.diskmorph.api.DiskmorphException;
import io.diskmorph.api.InPlacePlan;
import io.diskmorph.api.InPlaceRequest;
import io.diskmorph.api.InPlaceResult;

import java.nio.file.Path;
import java.util.concurrent.CountDownLatch;

/**
 * Converts IMAGE to FORMAT inside its own file: plans first (nothing
 * written), shows what stays and what moves, then executes with a progress
 * bar. Ctrl-C stops it safely: the original image comes back.
 */
public final class ConvertInPlace {
    private ConvertInPlace() {
    }

    public static void main(String[] args) {
        if (args.length != 2) {
            System.err.println("usage: ConvertInPlace IMAGE FORMAT");
            System.exit(64);
        }
        Path image = Path.of(args[0]);
        try {
            InPlacePlan plan = Diskmorph.plan(image, InPlaceRequest.to(args[1]));
            if (plan.nothingToChange()) {
                System.out.println(image + " is already " + plan.targetFormat());
                return;
            }
            System.out.printf("%s: %s -> %s, %d bytes stay, %d move, %d bytes of extra space%n", image,
                    plan.sourceFormat(), plan.targetFormat(), plan.keptBytes(), plan.movedBytes(), plan.extraSpace());
            // Ctrl-C or a kill runs the shutdown hooks and then halts the JVM: the hook asks the conversion
            // to stop and waits until it has (the original bytes back, or the conversion finished)
            Cancellation cancel = new Cancellation();
            CountDownLatch ended = new CountDownLatch(1);
            Thread stop = new Thread(() -> {
                cancel.cancel("signal");
                while (true) {
                    try {
                        ended.await();
                        return;
                    } catch (InterruptedException e) {
                        // keep waiting: halting now would leave the conversion half done
                    }
                }
            });
            Runtime.getRuntime().addShutdownHook(stop);
            DiskmorphException failed = null;
            try {
                InPlaceResult done = Diskmorph.execute(plan, ConvertInPlace::bar, cancel);
                System.err.println();
                System.out.printf("%s is %s now (%.3f s)%n", image, done.plan().targetFormat(),
                        done.elapsed().toNanos() / 1e9);
            } catch (DiskmorphException e) {
                fail(e); // said before the hook lets the JVM halt
                failed = e;
            } finally {
                ended.countDown();
            }
            try {
                Runtime.getRuntime().removeShutdownHook(stop);
            } catch (IllegalStateException shuttingDown) {
                return; // the hook has run: the process ends with the signal's status
            }
            if (failed != null) {
                System.exit(failed.exitCode());
            }
        } catch (DiskmorphException e) {
            fail(e);
            System.exit(e.exitCode());
        }
    }

    private static void fail(DiskmorphException e) {
        System.err.println();
        System.err.println("ConvertInPlace: " + e.getMessage());
        System.err.flush();
    }

    /** One line on stderr, redrawn: the phase and how far it is. */
    private static void bar(String phase, long done, long total) {
        int width = 30;
        int filled = total > 0 ? (int) (width * Math.min(done, total) / total) : width;
        System.err.printf("\r%-8s [%s%s] %3d%%", phase, "#".repeat(filled), " ".repeat(width - filled),
                total > 0 ? 100 * Math.min(done, total) / total : 100);
    }
}
