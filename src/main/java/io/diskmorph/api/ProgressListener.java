package io.diskmorph.api;

/**
 * Told how a long operation advances. Calls come from the thread running
 * the operation (not the caller's), often: once per table, chunk or MiB, so
 * a listener that prints should throttle itself, and it should return
 * quickly and not call back into the same image. A listener that throws is
 * called no more, and a conversion or copy it watched is cancelled (see
 * {@link Diskmorph}).
 */
@FunctionalInterface
public interface ProgressListener {
    /** A listener that ignores every update. */
    ProgressListener NONE = (phase, done, total) -> {
    };

    /**
     * One update.
     *
     * @param phase what the operation is doing: "copy" for a copy conversion,
     *              "compare" for a comparison; an in-place conversion's phases
     *              ("check", "survey", "plan", "journal", "write", "move",
     *              "sync", "switch", ...) as the CLI's {@code --progress=json}
     *              prints them
     * @param done  bytes (or units) of the phase done so far
     * @param total bytes (or units) the phase has in all; 0 when the phase has
     *              no measure and is reported at its start
     */
    void progress(String phase, long done, long total);
}
