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
    /** The figures; frozen: the planner no longer changes a draft once it froze it. */
    private final Draft d;
    private final Map<String, Double> phaseSeconds;

    private ConversionPlan(Draft d, Map<String, Double> phases) {
        this.d = d;
        this.phaseSeconds = Collections.unmodifiableMap(new LinkedHashMap<>(phases));
    }

    /**
     * The plan of a data file's conversion shown as the conversion of the
     * image it belongs to (a VMDK descriptor + flat extent): its source
     * format, the pair journal added to the journal and the extra space,
     * and a note first.
     */
    ConversionPlan relabeled(String sourceFormat, long pairJournalBytes, String note, boolean keepRollback) {
        Draft c = d.copy();
        c.sourceFormat = sourceFormat;
        if (note != null) {
            c.journalBytes += pairJournalBytes;
            c.extraSpace += Math.ceilDiv(pairJournalBytes, 4096) * 4096;
            c.notes.add(0, note);
            c.keepRollback = keepRollback; // the data file's own record goes with the rename unless kept
            c.replacesRollbackRecord = false;
        }
        return new ConversionPlan(c, phaseSeconds);
    }

    /** The same plan with the timings of every phase, planning's and execution's ({@link PhaseClock#stop}). */
    ConversionPlan withPhases(Map<String, Double> all) {
        return new ConversionPlan(d, all);
    }

    public String sourceFormat() {
        return d.sourceFormat;
    }

    public String targetFormat() {
        return d.targetFormat;
    }

    public long virtualSize() {
        return d.virtualSize;
    }

    /** The target's cluster size. */
    public long clusterSize() {
        return d.clusterSize;
    }

    public long originalLength() {
        return d.originalLength;
    }

    public long finalLength() {
        return d.finalLength;
    }

    /** Guest data bytes that stay at their host offset. */
    public long keptBytes() {
        return d.keptBytes;
    }

    public long keptUnits() {
        return d.keptUnits;
    }

    /** Guest data bytes copied to a new place, by reason. */
    public Map<MoveReason, Long> movedBytes() {
        return Collections.unmodifiableMap(d.movedBytes);
    }

    /** {@link #movedBytes()} under the reasons' JSON names ("header-zone", "unaligned", ...), in order. */
    public Map<String, Long> movedBytesByName() {
        Map<String, Long> named = new LinkedHashMap<>();
        movedBytes().forEach((r, b) -> named.put(r.name().toLowerCase(java.util.Locale.ROOT).replace('_', '-'), b));
        return named;
    }

    public long movedUnits() {
        return d.movedUnits;
    }

    public long movedBytesTotal() {
        long n = 0;
        for (long b : d.movedBytes.values()) {
            n += b;
        }
        return n;
    }

    public long zeroClusters() {
        return d.zeroClusters;
    }

    /**
     * Guest bytes the source maps as data whose bytes are holes of the file
     * (a preallocated image): they read zeros, so the target leaves them
     * unallocated (or zero clusters over a backing file) instead of keeping
     * or moving them.
     */
    public long zeroedDataBytes() {
        return d.zeroedDataBytes;
    }

    /** Bytes of target metadata written (tables, refcounts), the commit record excluded. */
    public long metadataBytes() {
        return d.metadataBytes;
    }

    /** Bytes of the commit record (the switching header write). */
    public long headerBytes() {
        return d.headerBytes;
    }

    /** Bytes of the original file overwritten (all saved in the journal first). */
    public long overwrittenBytes() {
        return d.overwrittenBytes;
    }

    public long journalBytes() {
        return d.journalBytes;
    }

    /**
     * Bound on the extra disk space the run allocates at its peak, in file
     * system blocks: the journal, blocks written into holes of the original
     * file or past its end, and the file system's bookkeeping of them.
     */
    public long extraSpace() {
        return d.extraSpace;
    }

    /** Free space on the image's file system when planned. */
    public long availableSpace() {
        return d.availableSpace;
    }

    public boolean enoughSpace() {
        return d.availableSpace >= d.extraSpace;
    }

    /** "first-fit" or "dense" (no unreferenced space allowed in the target). */
    public String policy() {
        return d.policy;
    }

    public boolean keepRollback() {
        return d.keepRollback;
    }

    /** Same format, and every option given is the image's already: nothing is written. */
    public boolean nothingToChange() {
        return d.nothingToChange;
    }

    /** The file has a rollback record of an earlier conversion, which this one makes useless (and removes). */
    public boolean replacesRollbackRecord() {
        return d.replacesRollbackRecord;
    }

    /** What the plan chose and why, and what to expect afterwards, in sentences for the user. */
    public List<String> notes() {
        return Collections.unmodifiableList(d.notes);
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

        Draft copy() {
            Draft c = new Draft();
            c.sourceFormat = sourceFormat;
            c.targetFormat = targetFormat;
            c.virtualSize = virtualSize;
            c.clusterSize = clusterSize;
            c.originalLength = originalLength;
            c.finalLength = finalLength;
            c.keptBytes = keptBytes;
            c.keptUnits = keptUnits;
            c.movedBytes.putAll(movedBytes);
            c.movedUnits = movedUnits;
            c.zeroClusters = zeroClusters;
            c.zeroedDataBytes = zeroedDataBytes;
            c.metadataBytes = metadataBytes;
            c.headerBytes = headerBytes;
            c.overwrittenBytes = overwrittenBytes;
            c.journalBytes = journalBytes;
            c.extraSpace = extraSpace;
            c.availableSpace = availableSpace;
            c.policy = policy;
            c.keepRollback = keepRollback;
            c.nothingToChange = nothingToChange;
            c.replacesRollbackRecord = replacesRollbackRecord;
            c.notes.addAll(notes);
            return c;
        }

        ConversionPlan freeze(Map<String, Double> phases) {
            return new ConversionPlan(this, phases);
        }
    }
}
