package io.diskmorph.testing;

import io.diskmorph.image.ExitCodes;

import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The drivers' hostile-input tests share this: every command a user would
 * run on a damaged image (map, compare, copy to raw, in place to qcow2, and
 * optionally info and check, in place to raw) says what is wrong in one line
 * with the documented exit code (check 1, compare 2 or qemu's 3 when the walk
 * finds it; the others {@code code}), in bounded time and memory, and the
 * file does not change, nor is a copy's target left behind.
 */
public final class Refusals {
    /** Heap bytes one command may allocate on a hostile image: a bound, not a budget. */
    public static final long ALLOCATION_BOUND = 64L << 20;

    private Refusals() {
    }

    /**
     * @param fragment what every refusal must say (an in-place refusal may say instead that it refuses a
     *                 damaged source)
     * @param infoToo  also info and check (some damage is only found past the header, by a walk)
     * @param toRawToo also the in-place conversion to raw
     */
    public static void byEveryCommand(Path img, Path scratch, int code, String fragment, boolean infoToo,
                                      boolean toRawToo) throws Exception {
        String before = sha256(img);
        Path out = scratch.resolve("out.raw");
        List<String> problems = new ArrayList<>();
        List<Object[]> cmds = new ArrayList<>(List.of(new Object[]{"map", "--output=json", img},
                new Object[]{"compare", img, img}, new Object[]{"convert", "-O", "raw", img, out},
                new Object[]{"convert", "--in-place", "-O", "qcow2", img}));
        if (toRawToo) {
            cmds.add(new Object[]{"convert", "--in-place", "-O", "raw", img});
        }
        if (infoToo) {
            cmds.add(new Object[]{"info", img});
            cmds.add(new Object[]{"check", img});
        }
        assertTimeoutPreemptively(Duration.ofSeconds(20), () -> {
            for (Object[] cmd : cmds) {
                long start = allocated();
                Dm.Result r = Dm.run(cmd);
                long used = allocated() - start;
                int expected = cmd[0].equals("check") ? ExitCodes.CHECK_FAILED
                        : cmd[0].equals("compare") ? ExitCodes.COMPARE_ERROR : code;
                // compare: damage found when opening is qemu-img's 2, found by the walk (a map entry) its 3
                boolean compareWalk = cmd[0].equals("compare") && r.exitCode() == ExitCodes.COMPARE_ALLOCATION_FAILED;
                if (r.exitCode() != expected && !compareWalk) {
                    problems.add(cmd[0] + " " + cmd[1] + ": exit " + r.exitCode() + " (expected " + expected + "): "
                            + r.err());
                }
                String line = r.oneLineError();
                boolean inPlace = cmd[1].equals("--in-place");
                if (!line.contains(fragment) && !(inPlace && line.contains("refuses a damaged source"))) {
                    problems.add(cmd[0] + " " + cmd[1] + ": '" + line + "' does not say '" + fragment + "'");
                }
                if (used > ALLOCATION_BOUND) {
                    problems.add(cmd[0] + " " + cmd[1] + ": allocated " + used + " bytes");
                }
            }
        });
        assertTrue(problems.isEmpty(), String.join("\n", problems));
        assertFalse(Files.exists(out), "a refused copy left its target");
        assertEquals(before, sha256(img), "a refusal changed the file");
    }

    private static long allocated() {
        return ((com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean()).getCurrentThreadAllocatedBytes();
    }

    private static String sha256(Path p) throws Exception {
        return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(Files.readAllBytes(p)));
    }
}
