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
import io.diskmorph.image.RelocatableImage;
import io.diskmorph.image.RepairMode;
import io.diskmorph.image.Sizes;
import io.diskmorph.image.UnsupportedFeatureException;
import io.diskmorph.storage.FileIdentity;
import io.diskmorph.storage.Storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * In-place conversion to raw: every guest unit ends at its guest offset, the
 * file at the virtual size, zeros as holes. Almost every unit moves, so
 * unlike the other pairs this is a roll-forward, not a journaled switch:
 *
 * <ol>
 * <li>The source driver ({@link RelocatableImage}) rewrites all its
 *     metadata in a region past the file's end and the spare area, and
 *     switches its header to it (one sector, synced). Old tables are free
 *     units now and are punched.</li>
 * <li>Rounds: units whose guest offset (their "home") is free are copied
 *     there; units blocking a home are evacuated to the spare area past the
 *     end, which breaks cycles (A's home holds B, B's home holds A) and
 *     splits long chains so that many advance at once. Per round: the data
 *     writes, then the driver remaps the units (qcow2: refcounts, sync,
 *     tables, sync; QED: sync, tables, sync), then the old places are
 *     punched. After every round
 *     the file is a valid source image with the same content; a crash
 *     leaves such a file, which a new run continues.</li>
 * <li>Holes: every home of a unit that reads zeros is punched.</li>
 * <li>The last step, through the rollback journal: guest unit 0, whose home
 *     is the source's header unit. The journal saves that unit; its bytes
 *     past the first sector are written, synced, then the first sector (the
 *     commit point), then the file is cut to the virtual size. A crash here
 *     leaves what {@code recover} finishes or undoes.</li>
 * </ol>
 * Extra disk space at the peak: the relocated metadata, the spare area and
 * one round's destinations (written before their sources are punched), plus
 * the journal (one unit): see {@link #extraSpace}.
 */
final class ToRaw {
    static final String TARGET = "raw";
    private static final long FS_BLOCK = 4096;
    /** The spare area: 1/256 of the virtual size, at least 16 units, at most this. */
    private static final long MAX_SPARE_BYTES = 1L << 30;
    private static final int COPY_BUFFER = 8 << 20;

    private final ConversionFile file;
    private final InPlaceConverter.Request request;
    private final Cancellation cancel;
    private final PhaseClock clock;
    private final ConversionPlan.Draft plan = new ConversionPlan.Draft();

    // the survey
    private long unit;
    private int units;
    /** Host unit of each guest unit, -1 where the guest reads zeros. */
    private long[] hostOf;
    private long spareBase;
    private int spareUnits;
    private long metadataBase;
    private FileIdentity identity;
    /** Why the source cannot move its own units, when it goes through {@link ToRawVia} instead; else null. */
    private String via;

    private ToRaw(ConversionFile file, InPlaceConverter.Request request, Cancellation cancel, PhaseClock clock) {
        this.file = file;
        this.request = request;
        this.cancel = cancel;
        this.clock = clock;
    }

    static boolean handles(InPlaceConverter.Request request) {
        return TARGET.equalsIgnoreCase(request.targetFormat());
    }

    /** The plan, writing nothing. */
    static ConversionPlan plan(ConversionFile file, InPlaceConverter.Request request, Cancellation cancel,
                               PhaseClock clock) throws IOException {
        ToRaw t = new ToRaw(file, request, cancel, clock);
        try (DiskImage source = t.survey()) {
            if (t.via == null) {
                return t.plan.freeze(clock.stop());
            }
        }
        return ToRawVia.plan(file, request, t.plan.sourceFormat, t.via, cancel, clock);
    }

    /** Plans and converts. */
    static ConversionPlan convert(ConversionFile file, InPlaceConverter.Request request, Cancellation cancel,
                                  PhaseClock clock) throws IOException {
        ToRaw t = new ToRaw(file, request, cancel, clock);
        try (DiskImage source = t.survey()) {
            if (t.via == null) {
                if (!t.plan.nothingToChange) {
                    t.run(source);
                }
                return t.plan.freeze(clock.stop());
            }
        }
        return ToRawVia.convert(file, request, t.plan.sourceFormat, t.via, cancel, clock);
    }

    // ---- plan ----

    private DiskImage survey() throws IOException {
        Storage image = file.image();
        plan.originalLength = image.size();
        plan.targetFormat = TARGET;
        plan.policy = "roll-forward";
        ImageFormat sourceFormat = request.sourceFormat() != null ? FormatRegistry.byName(request.sourceFormat())
                : FormatRegistry.probe(image);
        plan.sourceFormat = sourceFormat.name();
        if (request.keepRollback()) {
            throw new InvalidRequestException("--keep-rollback: in-place conversion to raw keeps no rollback "
                    + "record (the way back is " + wayBack(sourceFormat) + ")");
        }
        if (!request.options().isEmpty()) {
            throw new InvalidRequestException("in-place conversion to raw takes no -o options");
        }
        if (file.dir().exists(file.journalName())) {
            throw new InterruptedConversionException(file.displayName(), file.journalName());
        }
        identity = file.dir().identity(file.name());
        if (identity.links() > 1) {
            throw new UnsupportedFeatureException(file.displayName() + " has " + identity.links() + " hard "
                    + "links; in-place conversion changes the file behind every one of them and its journal "
                    + "would be found through this name only (convert a copy, or remove the other links)");
        }
        plan.availableSpace = file.dir().usableSpace();
        DiskImage source = sourceFormat.open(new InPlaceConverter.ReadOnlyView(image),
                new OpenContext(file.path(), true, file.backing(), false, false, file.extents()));
        try {
            clock.phase("check");
            plan.virtualSize = source.virtualSize();
            if (sourceFormat.name().equals(TARGET)) {
                plan.nothingToChange = true;
                plan.finalLength = plan.originalLength;
                return source;
            }
            RelocatableImage rel = check(source);
            if (rel == null) {
                return source; // through the intermediate format: ToRawVia plans
            }
            unit = rel.unitSize();
            plan.clusterSize = unit;
            clock.phase("survey");
            if (!walk(source)) {
                return source; // compressed data: through the intermediate format, ToRawVia plans
            }
            long fileUnits = Math.ceilDiv(Math.max(plan.virtualSize, plan.originalLength), unit);
            spareUnits = spareUnits(plan.virtualSize, unit);
            spareBase = fileUnits * unit;
            metadataBase = spareBase + spareUnits * unit;
            plan.metadataBytes = rel.relocatedMetadataBytes(metadataBase);
            plan.headerBytes = Journal.SECTOR;
            plan.finalLength = plan.virtualSize;
            plan.overwrittenBytes = Math.min(unit, plan.virtualSize);
            plan.journalBytes = lastStepJournalBytes(unit, plan.virtualSize);
            plan.extraSpace = extraSpace();
            plan.notes.add("no rollback record: the way back is " + wayBack(sourceFormat)
                    + "; a crash during the roll-forward leaves a valid " + plan.sourceFormat + " image with "
                    + "the same content, which a new run continues");
            plan.notes.add("extra space: the relocated " + plan.sourceFormat + " metadata, a spare area of "
                    + spareUnits + " units and one round of " + spareUnits + " units, plus the journal");
            return source;
        } catch (IOException | RuntimeException e) {
            source.close();
            throw e;
        }
    }

    /** The spare area in units: 1/256 of the virtual size, at least 16 units, at most {@link #MAX_SPARE_BYTES}. */
    static int spareUnits(long virtualSize, long unit) {
        return (int) Math.max(16, Math.min(MAX_SPARE_BYTES, virtualSize / 256) / unit);
    }

    /**
     * The checked relocatable source, or null when the source cannot move
     * its own units but goes through {@link ToRawVia} ({@link #via} says why).
     */
    private RelocatableImage check(DiskImage source) throws IOException {
        if (source.dataStorage() != source.storage()) {
            throw new UnsupportedFeatureException(file.displayName() + ": images with an external data file "
                    + "cannot be converted in place");
        }
        String why = source.notInPlaceSource();
        if (why != null) {
            throw new UnsupportedFeatureException(file.displayName() + ": " + why);
        }
        String own = source instanceof RelocatableImage r ? r.notRelocatable()
                : "its blocks lie where its own layout puts them, which a block of the raw file rarely matches";
        if (own != null) {
            if (source.backingFileName() != null) {
                throw new UnsupportedFeatureException(file.displayName() + ": " + (source instanceof RelocatableImage
                        ? own : "in-place conversion from " + plan.sourceFormat + " to raw is not supported: "
                        + (source.backingFileName() != null ? "the image has a backing file ("
                        + source.backingFileName() + "), which a raw file cannot refer to; use a copy conversion, "
                        + "which reads the whole chain" : own)));
            }
            via = own;
            return null;
        }
        RelocatableImage rel = (RelocatableImage) source;
        CheckReport report = source.check(RepairMode.NONE);
        if (report.corruptions > 0 || report.failure != null) {
            throw new CorruptImageException(plan.sourceFormat + " metadata", -1, file.displayName() + ": "
                    + (report.corruptions > 0 ? report.corruptions + " corruption(s) found" : "the check failed")
                    + "; in-place conversion refuses a damaged source: run 'diskmorph check -r all "
                    + file.displayName() + "' first");
        }
        return rel;
    }

    /** Refuses a roll-forward over more units than the heap holds (about 32 bytes a unit, guest and file). */
    static void checkMemory(ConversionFile file, long guestUnits, long fileUnits, long unit)
            throws UnsupportedFeatureException {
        long memory = 32 * (guestUnits + fileUnits);
        if (guestUnits >= Integer.MAX_VALUE / 2 || memory > Runtime.getRuntime().maxMemory() / 2) {
            throw new UnsupportedFeatureException(file.displayName() + ": an in-place conversion to raw of "
                    + guestUnits + " units of " + unit + " bytes needs about " + Sizes.human(memory) + " of memory, "
                    + "more than this JVM may use (raise -Xmx through DISKMORPH_JVM_OPTS, or use a copy conversion)");
        }
    }

    /**
     * The mapping in units: where each guest unit's data lives. False when
     * the source holds compressed data, which cannot move a unit at a time:
     * the conversion goes through {@link ToRawVia} then ({@link #via} set).
     */
    private boolean walk(DiskImage source) throws IOException {
        long v = plan.virtualSize;
        long n = Math.ceilDiv(v, unit);
        // the rounds keep per unit its place, its home's holder, a queue slot and a mark, and the driver its
        // table entry and refcount: about 32 bytes (512 MiB for 1 TiB in 64 KiB clusters)
        checkMemory(file, n, Math.ceilDiv(plan.originalLength, unit), unit);
        units = (int) n;
        long fileUnits = Math.ceilDiv(plan.originalLength, unit);
        ClusterBitmap used = new ClusterBitmap();
        hostOf = new long[units];
        Arrays.fill(hostOf, -1);
        for (long pos = 0; pos < v; ) {
            cancel.check();
            Mapping m = source.mapping(pos, v - pos);
            if (m instanceof Mapping.Compressed) {
                via = "compressed data at guest offset " + pos + ", which cannot move a unit at a time";
                return false;
            }
            if (m instanceof Mapping.Data d) {
                // a driver may name the file holding the data (VMDK's extents): only the image's own will do
                if (pos % unit != 0 || d.hostOffset() % unit != 0 || d.file() != null && d.file() != source.storage()) {
                    throw new UnsupportedFeatureException(file.displayName() + ": the data at guest offset " + pos
                            + " is not unit-aligned in the file");
                }
                for (long g = pos; g < pos + d.length(); g += unit) {
                    long host = (d.hostOffset() + g - pos) / unit;
                    if (host < 1 || host >= fileUnits || !used.set(host)) {
                        // the check passed, so only a hostile image gets here
                        throw new CorruptImageException(plan.sourceFormat + " mapping", host * unit, "the data "
                                + "of guest offset " + g + " lies " + (host < 1 ? "in the header" : host >= fileUnits
                                ? "past the end of the file" : "in a unit another guest offset uses too"));
                    }
                    hostOf[(int) (g / unit)] = host;
                    if (host == g / unit) {
                        plan.keptUnits++;
                        plan.keptBytes += Math.min(unit, v - g);
                    } else {
                        plan.addMoved(MoveReason.TO_GUEST_OFFSET, Math.min(unit, v - g));
                    }
                }
            } else {
                plan.zeroClusters += Math.ceilDiv(m.length(), unit);
            }
            pos += m.length();
        }
        return true;
    }

    /**
     * The peak extra disk space, in file system blocks: the relocated
     * metadata, the spare area, one round of destinations (a round writes
     * its units before their old places are punched), the journal, and the
     * file system's bookkeeping.
     */
    private long extraSpace() {
        return extraSpace(plan.metadataBytes, spareUnits, unit, plan.journalBytes, plan.movedUnits);
    }

    static long extraSpace(long metadataBytes, int spareUnits, long unit, long journalBytes, long movedUnits) {
        long blocks = Math.ceilDiv(metadataBytes, FS_BLOCK) + 2 * Math.ceilDiv(spareUnits * unit, FS_BLOCK)
                + Math.ceilDiv(journalBytes, FS_BLOCK);
        return (blocks + 16 + Math.ceilDiv(movedUnits, 256)) * FS_BLOCK;
    }

    /** The journal of the last step: its header sectors and unit 0's original bytes. */
    static long lastStepJournalBytes(long unit, long virtualSize) {
        return Journal.SECTOR * 4L + roundUp(Math.min(unit, virtualSize), Journal.SECTOR);
    }

    private static long roundUp(long v, long to) {
        return Math.ceilDiv(v, to) * to;
    }

    // ---- run ----

    private void run(DiskImage source) throws IOException {
        if (plan.availableSpace < plan.extraSpace) {
            throw new NotEnoughSpaceException("the in-place conversion to raw (relocated metadata, spare area "
                    + "and journal)", plan.extraSpace, plan.availableSpace);
        }
        cancel.check();
        Storage image = file.image();
        if (plan.virtualSize == 0) {
            // an empty disk: one truncate, before it an empty source image, after it an empty raw file
            clock.phase("cleanup");
            image.truncate(0);
            image.sync();
            return;
        }
        clock.phase("relocate");
        RelocatableImage.Relocation rel = ((RelocatableImage) source).relocate(image, metadataBase);
        try {
            rollForward(image, rel);
        } catch (Cancellation.CancelledException e) {
            throw e.leftAs(plan.sourceFormat); // a valid source image with the same content, part of it moved
        }
    }

    private void rollForward(Storage image, RelocatableImage.Relocation rel) throws IOException {
        // from here the file is the source image with its tables past the spare area
        RollForward rf = new RollForward(image, rel, hostOf, unit, units, spareBase / unit, spareUnits,
                Math.ceilDiv(plan.originalLength, unit), cancel, clock);
        rf.freeOldSpace();
        clock.phase("move");
        rf.run();
        plan.notes.add("moved in " + rf.rounds + " rounds: " + rf.copies + " unit copies, " + rf.evacuations
                + " of them to the spare area");
        clock.phase("holes");
        rf.punchZeroHomes(plan.virtualSize);
        rel.sync();
        cancel.check();
        finalStep(image);
    }

    /** Guest unit 0 over the header unit, through the journal; then the cut to the virtual size. */
    private void finalStep(Storage image) throws IOException {
        clock.phase("journal");
        int length = (int) Math.min(unit, plan.virtualSize);
        byte[] first = new byte[length];
        if (hostOf[0] >= 0) {
            image.read(ByteBuffer.wrap(first), hostOf[0] * unit);
        }
        long originalLength = image.size();
        CommitRecord commit = new CommitRecord(List.of(new CommitRecord.Write(0, Arrays.copyOf(first,
                Journal.SECTOR))));
        if (Journal.holds(image, 0, commit.commitPoint().bytes())) {
            throw new UnsupportedFeatureException("the guest's first sector equals the image header; nothing to "
                    + "convert");
        }
        List<long[]> segments = Journal.segments(image, List.<long[]>of(new long[]{0, length}));
        List<long[]> witnesses = witnesses(length, Math.min(originalLength, plan.virtualSize));
        Journal journal;
        try (Storage js = file.dir().create(file.journalName())) {
            journal = Journal.write(js, image, originalLength, plan.virtualSize, plan.sourceFormat, TARGET,
                    identity, commit.writes(), witnesses, segments, 0);
        }
        file.dir().sync();
        try {
            clock.phase("switch");
            if (length > Journal.SECTOR) {
                image.write(ByteBuffer.wrap(first, Journal.SECTOR, length - Journal.SECTOR), Journal.SECTOR);
            }
            image.sync();
            commit.apply(image);
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
        // the unit was written whole under the journal; its blocks of zeros become holes now (content unchanged)
        boolean punched = false;
        for (int at = 0; at + FS_BLOCK <= length; at += (int) FS_BLOCK) {
            if (allZero(first, at, at + (int) FS_BLOCK)) {
                image.punchHole(at, FS_BLOCK);
                punched = true;
            }
        }
        if (punched) {
            image.sync();
        }
    }

    /** 4 KiB ranges past unit 0 the final step never writes, for recover's ownership check. */
    private List<long[]> witnesses(long from, long limit) {
        List<long[]> out = new ArrayList<>();
        long start = roundUp(from, FS_BLOCK);
        long span = limit - start;
        if (span < FS_BLOCK) {
            return out;
        }
        for (int k = 0; k < 8; k++) {
            long at = (start + span / 8 * k) / FS_BLOCK * FS_BLOCK;
            if (at + FS_BLOCK <= limit && (out.isEmpty() || out.get(out.size() - 1)[0] + FS_BLOCK <= at)) {
                out.add(new long[]{at, FS_BLOCK});
            }
        }
        return out;
    }

    static boolean allZero(byte[] b, int from, int to) {
        for (int i = from; i < to; i++) {
            if (b[i] != 0) {
                return false;
            }
        }
        return true;
    }

    /** How a raw file becomes the source format again: in place where the format is a target, else a copy. */
    private static String wayBack(ImageFormat source) {
        return source instanceof io.diskmorph.image.LayoutTarget
                ? "'convert --in-place -O " + source.name() + "'"
                : "a copy, 'convert -O " + source.name() + "' (" + source.name() + " is no in-place target)";
    }
}
