package io.diskmorph.testing;

import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Judgements by qemu-img that tests of several packages share. */
public final class Oracles {
    private Oracles() {
    }

    /**
     * qemu-img check finds no corruption and no leak (exit 0). A format
     * qemu has no checker for (raw: exit 63, "does not support checks")
     * passes: qemu cannot judge it, which says nothing against the image.
     */
    public static void assertCheckClean(Path image, String format) {
        Qemu.Result r = Qemu.check(image, format);
        if (r.exitCode() == 63 && r.err().contains("does not support checks")) {
            return;
        }
        assertEquals(0, r.exitCode(), "qemu-img check -f " + format + " " + image + ": " + r.out() + r.err());
    }

    /**
     * Every guest byte that had data at a host offset before an in-place
     * conversion is at the same offset after, except for at most
     * {@code moved} bytes (what the plan says it moved).
     */
    public static void assertKeptInPlace(List<Qemu.MapLine> before, List<Qemu.MapLine> after, long moved) {
        long displaced = 0;
        for (Qemu.MapLine b : before) {
            if (!b.data() || b.offset() < 0 || b.depth() != 0) {
                continue;
            }
            for (Qemu.MapLine a : after) {
                long s = Math.max(a.start(), b.start());
                long e = Math.min(a.start() + a.length(), b.start() + b.length());
                if (s >= e) {
                    continue;
                }
                boolean same = a.offset() >= 0 && a.offset() - a.start() == b.offset() - b.start();
                if (!same) {
                    displaced += e - s;
                }
            }
        }
        assertTrue(displaced <= moved, "data displaced: " + displaced + " bytes, but the plan moved only " + moved);
    }
}
