package io.diskmorph.convert;

import java.util.ArrayList;
import java.util.Collections;
import java.util.EnumMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * What an in-place conversion does (or, with --dry-run, would do): the
 * figures the user sees before committing. Immutable; the planner fills a
 * {@link Draft} and freezes it, the execution adds its phase timings to a
 * copy.
 */
public final class ConversionPlan {
    private final String sourceFormat;
    private final String targetFormat;
    private final long virtualSize;
    private final long clusterSize;
    private final long originalLength;
    private final long finalLength;
    private final long keptBytes;
    private final long keptUnits;
    private final Map<MoveReason, Long> movedBytes;
    private final long movedUnits;
    private final long zeroClusters;
    private final long zeroedDataBytes;
    private final long metadataBytes;
    private final long headerBytes;
    private final long overwrittenBytes;
    private final long journalBytes;
    private final long extraSpace;
    private final long availableSpace;
    private final String policy;
    private final boolean keepRollback;
    private final boolean nothingToChange;
    private final boolean replacesRollbackRecord;
    private final List<String> notes;
    private final Map<String, Double> phaseSeconds;

    private ConversionPlan(Draft d, Map<String, Double> phases) {
        sourceFormat = d.sourceFormat;
        targetFormat = d.targetFormat;
        virtualSize = d.virtualSize;
        clusterSize = d.clusterSize;
        originalLength = d.originalLength;
        finalLength = d.finalLength;
        keptBytes = d.keptBytes;
        keptUnits = d.keptUnits;
        movedBytes = Collections.unmodifiableMap(new EnumMap<>(d.movedBytes));
        movedUnits = d.movedUnits;
        zeroClusters = d.zeroClusters;
        zeroedDataBytes = d.zeroedDataBytes;
        metadataBytes = d.metadataBytes;
        headerBytes = d.headerBytes;
        overwrittenBytes = d.overwrittenBytes;
        journalBytes = d.journalBytes;
        extraSpace = d.extraSpace;
        availableSpace = d.availableSpace;
        policy = d.policy;
        keepRollback = d.keepRollback;
        nothingToChange = d.nothingToChange;
        replacesRollbackRecord = d.replacesRollbackRecord;
        notes = List.copyOf(d.notes);
        phaseSeconds = Collections.unmodifiableMap(new LinkedHashMap<>(phases));
    }

    /** The same plan with the timings of every phase, planning's and execution's ({@link PhaseClock#stop}). */
    ConversionPlan withPhases(Map<String, Double> all) {
        return new ConversionPlan(draft(), all);
    }

    private Draft draft() {
        Draft d = new Draft();
        d.sourceFormat = sourceFormat;
        d.targetFormat = targetFormat;
        d.virtualSize = virtualSize;
        d.clusterSize = clusterSize;
        d.originalLength = originalLength;
        d.finalLength = finalLength;
        d.keptBytes = keptBytes;
        d.keptUnits = keptUnits;
        d.movedBytes.putAll(movedBytes);
        d.movedUnits = movedUnits;
        d.zeroClusters = zeroClusters;
        d.zeroedDataBytes = zeroedDataBytes;
        d.metadataBytes = metadataBytes;
        d.headerBytes = headerBytes;
        d.overwrittenBytes = overwrittenBytes;
        d.journalBytes = journalBytes;
        d.extraSpace = extraSpace;
        d.availableSpace = availableSpace;
        d.policy = policy;
        d.keepRollback = keepRollback;
        d.nothingToChange = nothingToChange;
        d.replacesRollbackRecord = replacesRollbackRecord;
        d.notes.addAll(notes);
        return d;
    }

    public String sourceFormat() {
        return sourceFormat;
    }

    public String targetFormat() {
        return targetFormat;
    }

    public long virtualSize() {
        return virtualSize;
    }

    /** The target's cluster size. */
    public long clusterSize() {
        return clusterSize;
    }

    public long originalLength() {
        return originalLength;
    }

    public long finalLength() {
        return finalLength;
    }

    /** Guest data bytes that stay at their host offset. */
    public long keptBytes() {
        return keptBytes;
    }

    public long keptUnits() {
        return keptUnits;
    }

    /** Guest data bytes copied to a new place, by reason. */
    public Map<MoveReason, Long> movedBytes() {
        return movedBytes;
    }

    public long movedUnits() {
        return movedUnits;
    }

    public long movedBytesTotal() {
        long n = 0;
        for (long b : movedBytes.values()) {
            n += b;
        }
        return n;
    }

    public long zeroClusters() {
        return zeroClusters;
    }

    /**
     * Guest bytes the source maps as data whose bytes are holes of the file
     * (a preallocated image): they read zeros, so the target leaves them
     * unallocated (or zero clusters over a backing file) instead of keeping
     * or moving them.
     */
    public long zeroedDataBytes() {
        return zeroedDataBytes;
    }

    /** Bytes of target metadata written (tables, refcounts), the commit record excluded. */
    public long metadataBytes() {
        return metadataBytes;
    }

    /** Bytes of the commit record (the switching header write). */
    public long headerBytes() {
        return headerBytes;
    }

    /** Bytes of the original file overwritten (all saved in the journal first). */
    public long overwrittenBytes() {
        return overwrittenBytes;
    }

    public long journalBytes() {
        return journalBytes;
    }

    /**
     * Bound on the extra disk space the run allocates at its peak, in file
     * system blocks: the journal, blocks written into holes of the original
     * file or past its end, and the file system's bookkeeping of them.
     */
    public long extraSpace() {
        return extraSpace;
    }

    /** Free space on the image's file system when planned. */
    public long availableSpace() {
        return availableSpace;
    }

    public boolean enoughSpace() {
        return availableSpace >= extraSpace;
    }

    /** "first-fit" or "dense" (no unreferenced space allowed in the target). */
    public String policy() {
        return policy;
    }

    public boolean keepRollback() {
        return keepRollback;
    }

    /** Same format, and every option given is the image's already: nothing is written. */
    public boolean nothingToChange() {
        return nothingToChange;
    }

    /** The file has a rollback record of an earlier conversion, which this one makes useless (and removes). */
    public boolean replacesRollbackRecord() {
        return replacesRollbackRecord;
    }

    /** What the plan chose and why, and what to expect afterwards, in sentences for the user. */
    public List<String> notes() {
        return notes;
    }

    /** Wall-clock seconds per phase (survey, plan, journal, write, sync, switch, cleanup). */
    public Map<String, Double> phaseSeconds() {
        return phaseSeconds;
    }

    /** The figures while the planner works them out. */
    static final class Draft {
        String sourceFormat;
        String targetFormat;
        long virtualSize;
        long clusterSize;
        long originalLength;
        long finalLength;
        long keptBytes;
        long keptUnits;
        final Map<MoveReason, Long> movedBytes = new EnumMap<>(MoveReason.class);
        long movedUnits;
        long zeroClusters;
        long zeroedDataBytes;
        long metadataBytes;
        long headerBytes;
        long overwrittenBytes;
        long journalBytes;
        long extraSpace;
        long availableSpace;
        String policy;
        boolean keepRollback;
        boolean nothingToChange;
        boolean replacesRollbackRecord;
        final List<String> notes = new ArrayList<>();

        void addMoved(MoveReason why, long bytes) {
            movedBytes.merge(why, bytes, Long::sum);
            movedUnits++;
        }

        ConversionPlan freeze(Map<String, Double> phases) {
            return new ConversionPlan(this, phases);
        }
    }
}
