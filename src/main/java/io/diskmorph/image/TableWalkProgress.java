package io.diskmorph.image;

/**
 * Progress of a walk over a table whose entries each cover a fixed number
 * of bytes (a BAT entry its block of guest bytes, an L1 entry the guest
 * bytes of its L2 table, a refcount block the host clusters it counts):
 * announces the phase at 0, reports once per {@link #STEP} bytes of
 * entries at most (so a table of millions of small entries does not cost a
 * listener call each) and ends at the total.
 */
public final class TableWalkProgress {
    private final PhaseProgress progress;
    private final String phase;
    private final long bytesPerEntry;
    private final long total;
    private final long every;
    /** The bytes of entries between two reports, at least (entries that cover more are reported each). */
    static final long STEP = 64L << 20;
    private long reported;

    /** Announces {@code phase} at 0 of {@code total} bytes. */
    public TableWalkProgress(PhaseProgress progress, String phase, long bytesPerEntry, long total) {
        this.progress = progress;
        this.phase = phase;
        this.bytesPerEntry = bytesPerEntry;
        this.total = Math.max(0, total);
        this.every = Math.max(1, STEP / Math.max(1, bytesPerEntry));
        progress.update(phase, 0, this.total);
    }

    /** Entry {@code index} is reached (the ones before it are done). */
    public void at(long index) {
        if (index % every == 0) {
            long bytes = bytesBefore(index);
            if (bytes > reported) { // entries past the disk's end add nothing
                reported = bytes;
                progress.update(phase, bytes, total);
            }
        }
    }

    /** The walk is over: the total is reached whatever the last entry was. */
    public void done() {
        progress.update(phase, total, total);
    }

    private long bytesBefore(long index) {
        // clamped: the last entry may cover less than a whole unit, and index x bytes may overflow
        return bytesPerEntry <= 0 || index > total / bytesPerEntry ? total : Math.min(total, index * bytesPerEntry);
    }
}
