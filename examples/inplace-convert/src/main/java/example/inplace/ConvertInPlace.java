package example.inplace;

import io.diskmorph.api.Cancellation;
import io.diskmorph.api.Diskmorph;
import io.diskmorph.api.DiskmorphException;
import io.diskmorph.api.InPlacePlan;
import io.diskmorph.api.InPlaceRequest;
import io.diskmorph.api.InPlaceResult;

import java.nio.file.Path;

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
            Cancellation cancel = new Cancellation();
            Thread stop = new Thread(() -> cancel.cancel("interrupted"));
            Runtime.getRuntime().addShutdownHook(stop);
            InPlaceResult done = Diskmorph.execute(plan, ConvertInPlace::bar, cancel);
            Runtime.getRuntime().removeShutdownHook(stop);
            System.err.println();
            System.out.printf("%s is %s now (%.3f s)%n", image, done.plan().targetFormat(),
                    done.elapsed().toNanos() / 1e9);
        } catch (DiskmorphException e) {
            System.err.println();
            System.err.println("ConvertInPlace: " + e.getMessage());
            System.exit(e.exitCode());
        }
    }

    /** One line on stderr, redrawn: the phase and how far it is. */
    private static void bar(String phase, long done, long total) {
        int width = 30;
        int filled = total > 0 ? (int) (width * Math.min(done, total) / total) : width;
        System.err.printf("\r%-8s [%s%s] %3d%%", phase, "#".repeat(filled), " ".repeat(width - filled),
                total > 0 ? 100 * Math.min(done, total) / total : 100);
    }
}
