package io.diskmorph.convert;

import java.util.LinkedHashMap;
import java.util.Map;

/** Wall-clock time per phase of an in-place operation, announced to the progress listener as each starts. */
final class PhaseClock {
    private final InPlaceConverter.Progress progress;
    private final Map<String, Double> seconds = new LinkedHashMap<>();
    private String name;
    private long start;

    PhaseClock(InPlaceConverter.Progress progress) {
        this.progress = progress;
    }

    /** Ends the running phase and starts {@code next} (null: none). */
    void phase(String next) {
        long now = System.nanoTime();
        if (name != null) {
            seconds.merge(name, (now - start) / 1e9, Double::sum);
        }
        name = next;
        start = now;
        if (next != null) {
            progress.update(next, 0, 0);
        }
    }

    void update(String phase, long done, long total) {
        progress.update(phase, done, total);
    }

    /** The phases so far; the running one is ended first. */
    Map<String, Double> stop() {
        phase(null);
        return seconds;
    }
}
