package io.diskmorph.convert;

import java.util.EnumMap;
import java.util.Map;

/**
 * What an in-place conversion does (or, with --dry-run, would do): the
 * figures the user sees before committing, and the engine's own settings
 * for the real run.
 */
public final class ConversionPlan {
    public String sourceFormat;
    public String targetFormat;
    public long virtualSize;
    public long clusterSize;
    public long originalLength;
    public long finalLength;
    /** Guest data bytes that stay at their host offset. */
    public long keptBytes;
    public long keptUnits;
    /** Guest data bytes copied to a new place, by reason. */
    public final Map<MoveReason, Long> movedBytes = new EnumMap<>(MoveReason.class);
    public long movedUnits;
    public long zeroClusters;
    /**
     * Guest bytes the source maps as data whose bytes are holes of the file
     * (a preallocated image): they read zeros, so the target leaves them
     * unallocated (or zero clusters over a backing file) instead of keeping
     * or moving them.
     */
    public long zeroedDataBytes;
    /** Bytes of target metadata written (tables, refcounts), header zone excluded. */
    public long metadataBytes;
    public long headerBytes;
    /** Bytes of the original file overwritten (all saved in the journal first). */
    public long overwrittenBytes;
    public long journalBytes;
    /**
     * Bound on the extra disk space the run allocates at its peak, in file
     * system blocks: the journal, blocks written into holes of the original
     * file or past its end, and the file system's bookkeeping of them.
     */
    public long extraSpace;
    /** Free space on the image's file system when planned. */
    public long availableSpace;
    /** "first-fit" or "dense" (no unreferenced space allowed in the target). */
    public String policy;
    public boolean keepRollback;
    /** Same format, and every option given is the image's already: nothing is written. */
    public boolean nothingToChange;
    /** The file has a rollback record of an earlier conversion, which this one makes useless (and removes). */
    public boolean replacesRollbackRecord;
    /** What the plan chose and why, and what to expect afterwards, in sentences for the user. */
    public final java.util.List<String> notes = new java.util.ArrayList<>();
    /** Wall-clock seconds per phase (survey, plan, journal, write, sync, switch, cleanup). */
    public final Map<String, Double> phaseSeconds = new java.util.LinkedHashMap<>();

    public boolean enoughSpace() {
        return availableSpace >= extraSpace;
    }

    public long movedBytesTotal() {
        long n = 0;
        for (long b : movedBytes.values()) {
            n += b;
        }
        return n;
    }

    void addMoved(MoveReason why, long bytes) {
        movedBytes.merge(why, bytes, Long::sum);
        movedUnits++;
    }
}
