package io.diskmorph.api;

import java.nio.file.Path;
import java.time.Instant;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * What an in-place conversion does, worked out before anything is written
 * ({@link Diskmorph#plan}) or as it was done ({@link InPlaceResult#plan()}):
 * the figures of {@code diskmorph convert --in-place --dry-run}, under the
 * JSON names of {@code --output=json} where they are named in the README.
 * {@link Diskmorph#execute(InPlacePlan, ProgressListener, Cancellation)}
 * carries out a plan if the file has not changed since it was made.
 *
 * @param image                  the image file
 * @param request                the conversion planned
 * @param lastModified           the file's modification time when it was planned
 * @param sourceFormat           the image's format
 * @param targetFormat           the format it becomes
 * @param nothingToChange        the image is already of the target format with these options: nothing is written
 * @param virtualSize            the guest disk's size in bytes
 * @param clusterSize            the target's allocation unit in bytes
 * @param originalLength         the file's length before
 * @param finalLength            the file's length after
 * @param keptBytes              guest bytes that stay where they are
 * @param movedBytes             guest bytes that move
 * @param movedBytesByReason     moved bytes by why they cannot stay ("header-zone", "unaligned", "fragmented",
 *                               "compressed", "materialized", "out-of-range", "compacted", "to-guest-offset")
 * @param zeroClusters           target clusters that read as zeros without data
 * @param zeroedDataBytes        guest bytes mapped as data in holes of the file, left unallocated
 * @param metadataBytes          bytes of new metadata written
 * @param headerBytes            bytes of the new header (written last: the switch)
 * @param overwrittenBytes       bytes of the original file overwritten (their old content goes to the journal)
 * @param journalBytes           bytes of the journal
 * @param extraSpace             free space the conversion needs at most, in bytes
 * @param availableSpace         free space there was when planned, in bytes
 * @param enoughSpace            whether that is enough (if not, {@link Diskmorph#execute} refuses and writes nothing)
 * @param policy                 how the target is laid out: "first-fit" or "dense" (moved data placement),
 *                               "roll-forward" (to raw), "through qcow2, then roll-forward", "rename" (VMDK
 *                               flat pair), "trailer" (fixed VHD footer)
 * @param notes                  what the plan wants a user to know, one line each
 * @param keepRollback           a rollback record is kept
 * @param replacesRollbackRecord the rollback record of an earlier conversion no longer matches and goes
 * @param phaseSeconds           seconds per phase so far ("check", "survey", "plan", and after execution
 *                               "journal", "write", "sync", ...), in order
 */
public record InPlacePlan(Path image, InPlaceRequest request, Instant lastModified, String sourceFormat,
                          String targetFormat, boolean nothingToChange, long virtualSize, long clusterSize,
                          long originalLength, long finalLength, long keptBytes, long movedBytes,
                          Map<String, Long> movedBytesByReason, long zeroClusters, long zeroedDataBytes,
                          long metadataBytes, long headerBytes, long overwrittenBytes, long journalBytes,
                          long extraSpace, long availableSpace, boolean enoughSpace, String policy,
                          List<String> notes, boolean keepRollback, boolean replacesRollbackRecord,
                          Map<String, Double> phaseSeconds) {

    /**
     * Copies the collections, so the value cannot change.
     *
     * @param image                  see the record
     * @param request                see the record
     * @param lastModified           see the record
     * @param sourceFormat           see the record
     * @param targetFormat           see the record
     * @param nothingToChange        see the record
     * @param virtualSize            see the record
     * @param clusterSize            see the record
     * @param originalLength         see the record
     * @param finalLength            see the record
     * @param keptBytes              see the record
     * @param movedBytes             see the record
     * @param movedBytesByReason     see the record
     * @param zeroClusters           see the record
     * @param zeroedDataBytes        see the record
     * @param metadataBytes          see the record
     * @param headerBytes            see the record
     * @param overwrittenBytes       see the record
     * @param journalBytes           see the record
     * @param extraSpace             see the record
     * @param availableSpace         see the record
     * @param enoughSpace            see the record
     * @param policy                 see the record
     * @param notes                  see the record
     * @param keepRollback           see the record
     * @param replacesRollbackRecord see the record
     * @param phaseSeconds           see the record
     */
    public InPlacePlan {
        movedBytesByReason = java.util.Collections.unmodifiableMap(new LinkedHashMap<>(movedBytesByReason));
        notes = List.copyOf(notes);
        phaseSeconds = java.util.Collections.unmodifiableMap(new LinkedHashMap<>(phaseSeconds));
    }

    static InPlacePlan of(Path image, InPlaceRequest request, Instant lastModified,
                          io.diskmorph.convert.ConversionPlan p) {
        return new InPlacePlan(image, request, lastModified, p.sourceFormat(), p.targetFormat(), p.nothingToChange(),
                p.virtualSize(), p.clusterSize(), p.originalLength(), p.finalLength(), p.keptBytes(),
                p.movedBytesTotal(), p.movedBytesByName(), p.zeroClusters(), p.zeroedDataBytes(), p.metadataBytes(), p.headerBytes(),
                p.overwrittenBytes(), p.journalBytes(), p.extraSpace(), p.availableSpace(), p.enoughSpace(),
                p.policy(), p.notes(), p.keepRollback(), p.replacesRollbackRecord(), p.phaseSeconds());
    }

    /**
     * The first figure in which {@code other}, a plan of the same request
     * made later, differs from this one ("moved bytes 0 -> 65536"), or null
     * when they agree on everything but the timings, the free space and the
     * modification time.
     */
    String differenceFrom(InPlacePlan other) {
        Object[][] figures = {
            {"source format", sourceFormat, other.sourceFormat},
            {"target format", targetFormat, other.targetFormat},
            {"nothing to change", nothingToChange, other.nothingToChange},
            {"virtual size", virtualSize, other.virtualSize},
            {"cluster size", clusterSize, other.clusterSize},
            {"file length", originalLength, other.originalLength},
            {"final length", finalLength, other.finalLength},
            {"kept bytes", keptBytes, other.keptBytes},
            {"moved bytes", movedBytesByReason, other.movedBytesByReason},
            {"zero clusters", zeroClusters, other.zeroClusters},
            {"zeroed data bytes", zeroedDataBytes, other.zeroedDataBytes},
            {"metadata bytes", metadataBytes, other.metadataBytes},
            {"header bytes", headerBytes, other.headerBytes},
            {"overwritten bytes", overwrittenBytes, other.overwrittenBytes},
            {"journal bytes", journalBytes, other.journalBytes},
            {"extra space", extraSpace, other.extraSpace},
            {"policy", policy, other.policy},
            {"notes", notes, other.notes},
            {"rollback record", replacesRollbackRecord, other.replacesRollbackRecord},
        };
        for (Object[] f : figures) {
            if (!java.util.Objects.equals(f[1], f[2])) {
                return f[0] + " " + f[1] + " -> " + f[2];
            }
        }
        return null;
    }
}
