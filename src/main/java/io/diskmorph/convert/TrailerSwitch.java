package io.diskmorph.convert;

import io.diskmorph.image.CheckReport;
import io.diskmorph.image.CommitRecord;
import io.diskmorph.image.CorruptImageException;
import io.diskmorph.image.DiskImage;
import io.diskmorph.image.FormatRegistry;
import io.diskmorph.image.ImageFormat;
import io.diskmorph.image.InterruptedConversionException;
import io.diskmorph.image.InvalidRequestException;
import io.diskmorph.image.Mapping;
import io.diskmorph.image.NotEnoughSpaceException;
import io.diskmorph.image.OpenContext;
import io.diskmorph.image.RepairMode;
import io.diskmorph.image.TrailerFormat;
import io.diskmorph.image.UnsupportedFeatureException;
import io.diskmorph.storage.FileIdentity;
import io.diskmorph.storage.Storage;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;

/**
 * In place between raw and a format that is raw data plus a trailer (a
 * fixed VHD): nothing moves, one sector changes, under the rollback
 * journal of the other pairs.
 * <ul>
 * <li><b>APPEND</b> (raw to a {@link TrailerFormat}): journal (original
 *     length, commit record = the trailer at the data's end); the file grows
 *     to the disk's length first when the target asks for a larger disk
 *     (holes); then the trailer, synced: the commit point. Before it,
 *     recover cuts the file back to its original length.</li>
 * <li><b>DROP</b> (an image whose mapping is the identity over its whole
 *     disk and whose file ends with at least a sector past it, to raw):
 *     journal holding the tail past the disk (the footer); the commit point
 *     is zeros over the file's last sector (the footer gone, the file is no
 *     longer the source format), then the cut to the disk's length. A
 *     rollback puts the tail back byte for byte.</li>
 * </ul>
 * The commit place of a DROP lies past the final length: {@link
 * Journal#holds} reads past the end of the file as zeros, as storages do,
 * so a crash after the cut is seen as committed.
 */
final class TrailerSwitch {
    private static final long FS_BLOCK = 4096;

    private final ConversionFile file;
    private final InPlaceConverter.Request request;
    private final ConversionPlan.Draft plan = new ConversionPlan.Draft();
    private List<CommitRecord.Write> commit;
    private List<long[]> segments;
    private List<long[]> witnesses;
    private FileIdentity identity;
    /** APPEND: where the trailer goes (the file grows to it first); DROP: -1. */
    private long trailerAt = -1;

    private TrailerSwitch(ConversionFile file, InPlaceConverter.Request request) {
        this.file = file;
        this.request = request;
    }

    /** The planned switch, or null when the request is not such a pair (another path takes it). */
    static TrailerSwitch plan(ConversionFile file, InPlaceConverter.Request request) throws IOException {
        Storage image = file.image();
        ImageFormat source = request.sourceFormat() != null ? FormatRegistry.byName(request.sourceFormat())
                : FormatRegistry.probe(image);
        ImageFormat target = FormatRegistry.byName(request.targetFormat());
        ImageFormat raw = FormatRegistry.plainFormat();
        TrailerSwitch t = new TrailerSwitch(file, request);
        if (source == raw && target instanceof TrailerFormat tf && target != raw) {
            t.planAppend(tf, target.name());
            return t;
        }
        if (target == raw && source != raw && source.supported() && t.planDrop(source)) {
            return t;
        }
        return null;
    }

    ConversionPlan plan(PhaseClock clock) {
        return plan.freeze(clock.stop());
    }

    private void common(String sourceFormat, String targetFormat) throws IOException {
        Storage image = file.image();
        plan.sourceFormat = sourceFormat;
        plan.targetFormat = targetFormat;
        plan.originalLength = image.size();
        plan.policy = "trailer";
        plan.keepRollback = request.keepRollback();
        if (file.dir().exists(file.journalName())) {
            throw new InterruptedConversionException(file.displayName(), file.journalName());
        }
        identity = file.dir().identity(file.name());
        if (identity.links() > 1) {
            throw new UnsupportedFeatureException(file.displayName() + " has " + identity.links() + " hard "
                    + "links; in-place conversion changes the file behind every one of them and its journal "
                    + "would be found through this name only (convert a copy, or remove the other links)");
        }
        plan.replacesRollbackRecord = file.dir().exists(file.rollbackName());
        plan.availableSpace = file.dir().usableSpace();
    }

    private void planAppend(TrailerFormat target, String targetName) throws IOException {
        common("raw", targetName);
        long length = plan.originalLength;
        TrailerFormat.Trailer t = target.trailer(length, request.options());
        if (t.dataLength() < length) {
            throw new IllegalStateException("a trailer inside the raw data");
        }
        trailerAt = t.dataLength();
        byte[] bytes = t.bytes();
        plan.virtualSize = t.dataLength();
        plan.finalLength = t.dataLength() + bytes.length;
        plan.keptBytes = length;
        plan.headerBytes = bytes.length;
        plan.notes.addAll(t.notes());
        if (t.dataLength() > length) {
            plan.notes.add("the disk grows by " + (t.dataLength() - length) + " bytes of zeros (holes) to "
                    + t.dataLength());
        }
        plan.notes.add("nothing moves: the " + targetName + " trailer (" + bytes.length + " bytes) is appended at "
                + t.dataLength() + "; a rollback cuts it off again");
        commit = List.of(new CommitRecord.Write(t.dataLength(), bytes));
        segments = List.of();
        finishPlan(Math.min(length, plan.virtualSize));
    }

    /** True when the source's every guest byte is its file's byte at the same offset, metadata after them. */
    private boolean planDrop(ImageFormat sourceFormat) throws IOException {
        Storage image = file.image();
        long length = image.size();
        try (DiskImage source = sourceFormat.open(new InPlaceConverter.ReadOnlyView(image),
                new OpenContext(file.path(), true, file.backing(), false, false, file.extents()))) {
            long v = source.virtualSize();
            if (source.backingFileName() != null || source.dataStorage() != source.storage()
                    || source.notInPlaceSource() != null || v == 0 || length - 512 < v) {
                return false;
            }
            for (long pos = 0; pos < v; ) {
                Mapping m = source.mapping(pos, v - pos);
                if (!(m instanceof Mapping.Data d) || d.hostOffset() != pos
                        || d.file() != null && d.file() != source.storage()) {
                    return false;
                }
                pos += m.length();
            }
            if (!request.options().isEmpty()) {
                throw new InvalidRequestException("in-place conversion to raw takes no -o options");
            }
            common(sourceFormat.name(), "raw");
            CheckReport report;
            try {
                report = source.check(RepairMode.NONE);
            } catch (UnsupportedFeatureException e) {
                report = new CheckReport();
            }
            if (report.corruptions > 0 || report.failure != null) {
                throw new CorruptImageException(plan.sourceFormat + " metadata", -1, file.displayName() + ": "
                        + report.corruptions + " corruption(s) found; in-place conversion refuses a damaged "
                        + "source: run 'diskmorph check " + file.displayName() + "' first");
            }
            plan.virtualSize = v;
            plan.finalLength = v;
            plan.keptBytes = v;
            plan.headerBytes = 512;
            plan.overwrittenBytes = 512;
            commit = List.of(new CommitRecord.Write(length - 512, new byte[512]));
            // the whole tail past the disk is saved, so a rollback is byte for byte
            segments = Journal.segments(image, List.<long[]>of(new long[]{v, length}));
            plan.notes.add("nothing moves: the " + (length - v) + " bytes past the disk (the " + plan.sourceFormat
                    + " footer) are cut off");
            if (length - v > 512) {
                plan.notes.add("the file holds " + (length - v - 512) + " bytes between the disk's end and the "
                        + "footer (a disk sized by its geometry, smaller than its current_size): no guest byte as "
                        + "qemu reads the disk, cut too; the journal keeps them, so a rollback puts them back");
            }
            finishPlan(v);
            return true;
        }
    }

    private void finishPlan(long dataBytes) {
        witnesses = witnesses(dataBytes);
        plan.journalBytes = Journal.fileSize(segments, plan.sourceFormat, plan.targetFormat, commit, witnesses.size());
        plan.extraSpace = (Math.ceilDiv(plan.journalBytes, FS_BLOCK) + 2) * FS_BLOCK;
    }

    /** 4 KiB ranges of the data, which no step writes, for recover's ownership check. */
    private static List<long[]> witnesses(long limit) {
        List<long[]> out = new ArrayList<>();
        if (limit < FS_BLOCK) {
            return out;
        }
        for (int k = 0; k < 8; k++) {
            long at = limit / 8 * k / FS_BLOCK * FS_BLOCK;
            if (at + FS_BLOCK <= limit && (out.isEmpty() || out.get(out.size() - 1)[0] + FS_BLOCK <= at)) {
                out.add(new long[]{at, FS_BLOCK});
            }
        }
        return out;
    }

    /** Journal, (grow,) commit, clean up. */
    ConversionPlan execute(Cancellation cancel, PhaseClock clock) throws IOException {
        Storage image = file.image();
        if (plan.availableSpace < plan.extraSpace) {
            throw new NotEnoughSpaceException("the in-place conversion (journal)", plan.extraSpace,
                    plan.availableSpace);
        }
        CommitRecord.Write point = commit.getLast();
        if (Journal.holds(image, point.offset(), point.bytes())) {
            throw new UnsupportedFeatureException("the target's commit record equals what the file holds already; "
                    + "nothing to convert");
        }
        cancel.check();
        file.dir().delete(file.rollbackName()); // an older rollback record no longer matches the file
        clock.phase("journal");
        Journal journal;
        try (Storage js = file.dir().create(file.journalName())) {
            journal = Journal.write(js, image, plan.originalLength, plan.finalLength, plan.sourceFormat,
                    plan.targetFormat, identity, commit, witnesses, segments,
                    plan.keepRollback ? Journal.FLAG_KEEP_ROLLBACK : 0);
        }
        file.dir().sync();
        if (cancel.requested()) {
            file.dir().delete(file.journalName());
            file.dir().sync();
            cancel.check();
        }
        try {
            clock.phase("switch");
            if (trailerAt > image.size()) {
                image.truncate(trailerAt); // a larger disk: zeros, as holes
                image.sync();
            }
            cancel.check();
            new CommitRecord(commit).apply(image);
        } catch (IOException | RuntimeException e) {
            try {
                Recovery.restore(file, journal);
            } catch (IOException | RuntimeException r) {
                e.addSuppressed(r);
            }
            throw e;
        }
        clock.phase("cleanup");
        Recovery.finishCommitted(file, journal);
        return plan.freeze(clock.stop());
    }
}
