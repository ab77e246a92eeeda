package io.diskmorph.convert;

import io.diskmorph.image.CommitRecord;
import io.diskmorph.image.CorruptImageException;
import io.diskmorph.image.CreateSpec;
import io.diskmorph.image.DiskImage;
import io.diskmorph.image.FormatRegistry;
import io.diskmorph.image.HostSpace;
import io.diskmorph.image.ImageException;
import io.diskmorph.image.ImageFormat;
import io.diskmorph.image.ImageInfo;
import io.diskmorph.image.InterruptedConversionException;
import io.diskmorph.image.LayoutBuilder;
import io.diskmorph.image.LayoutTarget;
import io.diskmorph.image.NotEnoughSpaceException;
import io.diskmorph.image.OpenContext;
import io.diskmorph.image.UnsupportedFeatureException;
import io.diskmorph.storage.ForwardingStorage;
import io.diskmorph.storage.Storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

/**
 * In-place conversion: turns the image in a file into another format inside
 * the same file, keeping guest data where it is. A {@link Planner} works out
 * everything read-only (the {@link ConversionPlan} a dry run prints, and what
 * the run needs), an {@link Executor} carries it out.
 *
 * <p>Protocol (a rollback journal around a single header switch):
 * <ol>
 * <li>Plan, read-only: walk the source in target clusters (keep / move /
 *     zero / unallocated), run the target's {@link LayoutBuilder} in a dry run
 *     over a recording {@link HostSpace}: that gives every byte range the
 *     conversion will write, the header, and the final length.</li>
 * <li>Journal: save the original bytes of every range inside the original
 *     file that will be overwritten (plus the tail a shrink would cut, when a
 *     rollback record is kept), with the original length and the target's
 *     first header sector; sync it and its directory.</li>
 * <li>Write: run the builder again for real (deterministic, same placement);
 *     moving units are copied. The source is read through
 *     {@link OverlayStorage}, which serves overwritten ranges from the
 *     journal, so the order of writes never matters. Sync.</li>
 * <li>Switch: write the first header sector, sync. This is the commit point.</li>
 * <li>Clean up: set the final length, sync, retire the journal (or keep it
 *     as the rollback record), sync the directory.</li>
 * </ol>
 * A crash anywhere leaves either the untouched source, the finished target,
 * or a state {@link Recovery#recover} turns into one of them.
 */
public final class InPlaceConverter {
    private static final int SECTOR = 512;
    /** The file system block the extra-space bound counts in (ext4, XFS, btrfs default). */
    private static final long FS_BLOCK = 4096;
    private static final int WITNESSES = 8;

    private InPlaceConverter() {
    }

    /**
     * @param sourceFormat forced source format, or null to probe
     * @param options      target -o options
     */
    public record Request(String sourceFormat, String targetFormat, Map<String, String> options,
                          boolean keepRollback) {
    }

    /** Phase and progress notifications (the CLI's -p): a {@link io.diskmorph.image.PhaseProgress}. */
    public interface Progress extends io.diskmorph.image.PhaseProgress {
        Progress NONE = (phase, done, total) -> {
        };
    }

    /**
     * Plans without writing anything, telling {@code observer} where every
     * unit of guest data and the target's metadata will be (the journaled
     * pairs; the conversion to raw puts every unit at its guest offset, and
     * a descriptor + flat extent switch moves nothing, so neither tells).
     */
    public static ConversionPlan plan(ConversionFile file, Request request, PlanObserver observer)
            throws IOException {
        FlatPairSwitch.Planned pair = FlatPairSwitch.plan(file, request, new PhaseClock(Progress.NONE));
        if (pair != null || ToRaw.handles(request) || TrailerSwitch.plan(file, request) != null) {
            return plan(file, request); // a trailer switch (a fixed VHD) moves nothing either
        }
        return Planner.plan(file, request, Cancellation.NONE, new PhaseClock(Progress.NONE), observer).plan();
    }

    /** Plans without writing anything. */
    public static ConversionPlan plan(ConversionFile file, Request request) throws IOException {
        return plan(file, request, Progress.NONE);
    }

    /** Plans without writing anything, telling {@code progress} the planner's phases (as a dry run's). */
    public static ConversionPlan plan(ConversionFile file, Request request, Progress progress) throws IOException {
        PhaseClock clock = new PhaseClock(progress);
        FlatPairSwitch.Planned pair = FlatPairSwitch.plan(file, request, clock);
        if (pair != null) { // a descriptor + flat data file: renames, nothing moves
            return pair.plan();
        }
        TrailerSwitch trailer = TrailerSwitch.plan(file, request);
        if (trailer != null) { // raw data plus a trailer (a fixed VHD): nothing moves
            return trailer.plan(clock);
        }
        if (ToRaw.handles(request)) {
            return ToRaw.plan(file, request, Cancellation.NONE, clock);
        }
        return Planner.plan(file, request, Cancellation.NONE, clock).plan();
    }

    /** Plans, journals, converts and commits. Returns the plan that was carried out. */
    public static ConversionPlan convert(ConversionFile file, Request request, Progress progress) throws IOException {
        return convert(file, request, progress, Cancellation.NONE);
    }

    /**
     * Plans, journals, converts and commits, unless {@code cancel} is
     * requested before the commit point: then the original bytes are put
     * back and {@link Cancellation.CancelledException} is thrown (a request
     * after the commit point lets the conversion finish). Returns the plan
     * that was carried out; nothing is written when the plan finds nothing
     * to change ({@link ConversionPlan#nothingToChange}).
     */
    public static ConversionPlan convert(ConversionFile file, Request request, Progress progress,
                                         Cancellation cancel) throws IOException {
        PhaseClock clock = new PhaseClock(progress);
        FlatPairSwitch.Planned pair = FlatPairSwitch.plan(file, request, clock);
        if (pair != null) { // a descriptor + flat data file: renames, nothing moves
            if (!pair.plan().enoughSpace()) {
                throw new NotEnoughSpaceException("the in-place conversion", pair.plan().extraSpace(),
                        pair.plan().availableSpace());
            }
            if (pair.dataConversion() != null) { // the data file converted like a raw file, then renamed
                return FlatPairSwitch.executeJoinConverting(file.dir(), file.name(), pair, progress, cancel,
                        FlatPairSwitch.DataFileOpener.DEFAULT);
            }
            FlatPairSwitch.execute(file.dir(), file.name(), pair.spec(), cancel);
            return pair.plan();
        }
        TrailerSwitch trailer = TrailerSwitch.plan(file, request);
        if (trailer != null) { // raw data plus a trailer (a fixed VHD): nothing moves
            return trailer.execute(cancel, clock);
        }
        if (ToRaw.handles(request)) { // a roll-forward of its own, see ToRaw
            return ToRaw.convert(file, request, cancel, clock);
        }
        PreparedConversion prepared = Planner.plan(file, request, cancel, clock);
        if (prepared.plan().nothingToChange()) {
            return prepared.plan();
        }
        return Executor.execute(file, prepared, cancel, clock);
    }

    /** A read-only, non-owning view so opening the source never closes or writes the image. */
    static final class ReadOnlyView extends ForwardingStorage {
        ReadOnlyView(Storage s) {
            super(s);
        }

        @Override
        public void write(ByteBuffer src, long position) throws IOException {
            throw new IOException("read-only view");
        }

        @Override
        public void sync() {
        }

        @Override
        public void truncate(long size) throws IOException {
            throw new IOException("read-only view");
        }

        @Override
        public void punchHole(long offset, long length) throws IOException {
            throw new IOException("read-only view");
        }

        @Override
        public boolean isReadOnly() {
            return true;
        }

        @Override
        public void close() {
        }
    }
}
