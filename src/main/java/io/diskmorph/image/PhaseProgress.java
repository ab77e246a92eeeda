package io.diskmorph.image;

/**
 * What a long operation tells its listener (the CLI's {@code -p} and
 * {@code --progress=json}): the phase it is in and how far that phase has
 * got, in bytes of the phase's own measure (guest bytes whose tables a check
 * judged, host bytes whose reference counts it compared, bytes a recovery
 * restored...). Within a phase {@code done} never decreases and a phase that
 * has a measure ends with {@code done == total}; a phase without one is
 * announced with {@code total == 0}. Callers report often (a table, a page
 * of entries); listeners throttle what they print.
 */
@FunctionalInterface
public interface PhaseProgress {
    /** The listener that ignores everything. */
    PhaseProgress NONE = (phase, done, total) -> {
    };

    /**
     * One report.
     *
     * @param phase the phase's name (documented per command in the README)
     * @param done  bytes of the phase done so far
     * @param total bytes the phase has in all; 0: a phase without a byte count, announced as it starts
     */
    void update(String phase, long done, long total);
}
