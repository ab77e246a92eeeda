package io.diskmorph.convert;

import io.diskmorph.image.DiskImage;
import io.diskmorph.image.FlatDataImage;
import io.diskmorph.image.FlatDescriptorFormat;
import io.diskmorph.image.FormatRegistry;
import io.diskmorph.image.ImageException;
import io.diskmorph.image.ImageFormat;
import io.diskmorph.image.InterruptedConversionException;
import io.diskmorph.image.InvalidRequestException;
import io.diskmorph.image.JournalMismatchException;
import io.diskmorph.image.OpenContext;
import io.diskmorph.image.UnsupportedFeatureException;
import io.diskmorph.storage.FileIdentity;
import io.diskmorph.storage.FileStorage;
import io.diskmorph.storage.FileStorageDir;
import io.diskmorph.storage.LockMode;
import io.diskmorph.storage.Storage;
import io.diskmorph.storage.StorageDir;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.zip.CRC32C;

/**
 * In-place conversion between a descriptor + flat data file pair (a VMDK
 * descriptor NAME.vmdk with one flat extent NAME-flat.vmdk, see
 * {@link FlatDataImage}) and a raw image at the descriptor's path. No guest
 * byte moves: the data file already is the raw disk, so the conversion is
 * a matter of directory entries, made crash-safe by a journal of its own
 * kind ({@code NAME.dmjournal}, recognised by {@link #isPairJournal}) that
 * holds the descriptor's text and the data file's name.
 *
 * <p>JOIN (pair to raw): journal (synced, directory synced); rename the data
 * file over the descriptor, directory sync: the commit point (one atomic
 * rename, so the path always names either the descriptor or the raw file);
 * then the journal goes, or becomes the rollback record. SPLIT (raw to
 * pair, the way back of a rollback): hard-link the raw file under the data
 * file's name, directory sync; write the descriptor to a temporary file,
 * sync, rename it over the path, directory sync: the commit point. Every
 * step of {@link #recover} and {@link #rollback} is idempotent and judged
 * by what the names hold (the path holds the descriptor's exact text, or
 * not; the data file's name exists, or not), so a crash anywhere leaves a
 * state that recover finishes.
 */
final class FlatPairSwitch {
    static final String TEMP_SUFFIX = ".dmdescriptor";
    private static final byte[] STATE_MAGIC = "DMPAIRST".getBytes(StandardCharsets.US_ASCII);
    private static final byte[] BODY_MAGIC = "DMPAIRBD".getBytes(StandardCharsets.US_ASCII);
    private static final int SECTOR = 512;
    /** A descriptor is text of a few hundred bytes; qemu reads at most 1 MiB of it. */
    private static final int MAX_DESCRIPTOR_BYTES = 1 << 20;
    private static final int STATE_BYTES = 8 + 4 + 4 * 8 + 4;
    static final int MODE_CONVERT = 1;
    static final int MODE_ROLLBACK = 2;

    enum Direction {
        /** Descriptor + data file to raw: the data file takes the descriptor's path. */
        JOIN,
        /** Raw to descriptor + data file: the raw file gets the data file's name, a descriptor takes its path. */
        SPLIT
    }

    /**
     * What a switch does; all of it is in the journal.
     *
     * @param dataName   the data file's name in the same directory
     * @param descriptor the descriptor's exact bytes
     * @param dataLength the data file's length (the raw image's)
     */
    record Spec(Direction direction, String dataName, byte[] descriptor, long dataLength, String sourceFormat,
                String targetFormat, boolean keepRollback) {
    }

    /**
     * The journal's first sector (rewritten in place, one sector: atomic):
     * the mode and, once committed with --keep-rollback, the size and change
     * stamp of the path and of the data file, so a rollback can tell whether
     * either was written since.
     */
    record State(int mode, long pathSize, long pathStamp, long dataSize, long dataStamp) {
    }

    private FlatPairSwitch() {
    }

    // ---- plan ----

    /**
     * A planned switch: the spec and the figures a dry run prints; for a
     * descriptor + data pair to another format than raw, the conversion of
     * the data file (as raw, in place, under its own journal) that comes
     * before the rename.
     */
    record Planned(Spec spec, ConversionPlan plan, InPlaceConverter.Request dataConversion) {
        Planned(Spec spec, ConversionPlan plan) {
            this(spec, plan, null);
        }
    }

    /**
     * Opens the data file for its own in-place conversion (locked
     * exclusively); storages without a path (the crash tests) open it
     * through the directory.
     */
    interface DataFileOpener {
        DataFileOpener DEFAULT = (dir, name, lock) -> dir instanceof FileStorageDir fd
                ? (lock == LockMode.NONE
                ? new ConversionFile(FileStorage.open(fd.path(name), false, LockMode.NONE), fd, name,
                fd.path(name), null)
                : ConversionFile.open(fd.path(name), lock, null))
                : new ConversionFile(dir.open(name, lock == LockMode.SHARED), dir, name, null, null);

        /**
         * @param lock EXCLUSIVE to convert, SHARED to plan, NONE for a second name of the image's own
         *             file (a rollback's hard link), which the image's lock covers already
         */
        ConversionFile open(StorageDir dir, String name, LockMode lock) throws IOException;
    }

    /**
     * Plans a conversion of a descriptor + flat data pair to raw, writing
     * nothing; null when {@code file} is no such pair (another pair handles
     * the request), an exception with one line when it is one but cannot be
     * switched.
     */
    static Planned planJoin(ConversionFile file, InPlaceConverter.Request request, PhaseClock clock)
            throws IOException {
        if (file.extents() == null) {
            return null;
        }
        Storage image = file.image();
        ImageFormat sourceFormat = request.sourceFormat() != null ? FormatRegistry.byName(request.sourceFormat())
                : FormatRegistry.probe(image);
        String dataName;
        long virtualSize;
        try (DiskImage source = sourceFormat.open(new InPlaceConverter.ReadOnlyView(image),
                new OpenContext(file.path(), true, file.backing(), false, false, file.extents()))) {
            if (!(source instanceof FlatDataImage flat) || (dataName = flat.flatDataFile()) == null) {
                return null;
            }
            virtualSize = source.virtualSize();
        }
        boolean toRaw = "raw".equalsIgnoreCase(request.targetFormat());
        if (!toRaw && request.targetFormat().equals(sourceFormat.name())) {
            return null; // to the same format: refused as a descriptor with extent files
        }
        String name = file.displayName();
        StorageDir dir = file.dir();
        if (toRaw && !request.options().isEmpty()) {
            throw new InvalidRequestException("in-place conversion to raw takes no -o options");
        }
        if (dir.exists(file.journalName())) {
            throw new InterruptedConversionException(name, file.journalName());
        }
        if (file.path() != null && java.nio.file.Files.isSymbolicLink(file.path())) {
            throw new UnsupportedFeatureException(name + " is a symbolic link: the flat extent would be renamed "
                    + "over the link's target, not over this name (convert the descriptor by its real path)");
        }
        if (dataName.contains("/") || dataName.equals(".") || dataName.equals("..")) {
            throw new UnsupportedFeatureException(name + ": the flat extent " + dataName + " is outside the "
                    + "descriptor's directory: it cannot take the descriptor's place by a rename (a copy works: "
                    + "'diskmorph convert -O raw SRC DST')");
        }
        if (dataName.equals(file.name()) || dataName.endsWith(io.diskmorph.image.Images.JOURNAL_SUFFIX)
                || dataName.endsWith(io.diskmorph.image.Images.ROLLBACK_SUFFIX)
                || dataName.equals(file.name() + TEMP_SUFFIX)) {
            throw new UnsupportedFeatureException(name + ": the flat extent's name " + dataName + " is one "
                    + "diskmorph uses for the descriptor's own files; rename the extent first");
        }
        if (dir.isSymbolicLink(dataName)) {
            throw new UnsupportedFeatureException(name + ": the flat extent " + dataName + " is a symbolic link: "
                    + "renaming it over the descriptor would make the descriptor's path a link, not the disk "
                    + "(a copy works)");
        }
        FileIdentity data = dir.identity(dataName);
        FileIdentity desc = dir.identity(file.name());
        if (data.links() > 1 || desc.links() > 1) {
            throw new UnsupportedFeatureException(name + ": " + (data.links() > 1 ? "the flat extent " + dataName
                    + " has " + data.links() : "the descriptor has " + desc.links()) + " hard links; the other "
                    + "names would keep the old file (remove the other links, or convert a copy)");
        }
        if (data.device() != desc.device()) {
            throw new UnsupportedFeatureException(name + ": the flat extent " + dataName + " is on another file "
                    + "system than the descriptor (a mount point in between): a rename between them is "
                    + "impossible (a copy works)");
        }
        long dataLength;
        try (Storage d = dir.open(dataName, true)) {
            dataLength = d.size();
        }
        if (dataLength < virtualSize) {
            throw new UnsupportedFeatureException(name + ": the flat extent " + dataName + " is " + dataLength
                    + " bytes, shorter than the disk (" + virtualSize + " bytes; qemu and diskmorph read zeros "
                    + "past its end): as a raw file it would be a smaller disk. Extend it first ('truncate -s "
                    + virtualSize + " " + dataName + "': the same zeros) and convert again");
        }
        if (dataLength > virtualSize) {
            throw new UnsupportedFeatureException(name + ": the flat extent " + dataName + " is " + dataLength
                    + " bytes, longer than the disk (" + virtualSize + " bytes): as a raw file the bytes past "
                    + "the disk's end would become part of it (a copy works)");
        }
        if (image.size() > MAX_DESCRIPTOR_BYTES) {
            throw new UnsupportedFeatureException(name + ": a descriptor of " + image.size() + " bytes is not a "
                    + "VMDK-sized descriptor (at most " + MAX_DESCRIPTOR_BYTES + ")");
        }
        byte[] descriptor = readAll(dir, file.name());
        if (!toRaw) {
            return planJoinConverting(file, request, clock, sourceFormat.name(), dataName, descriptor, dataLength);
        }
        Spec spec = new Spec(Direction.JOIN, dataName, descriptor, dataLength, sourceFormat.name(), "raw",
                request.keepRollback());
        ConversionPlan.Draft plan = new ConversionPlan.Draft();
        plan.sourceFormat = sourceFormat.name();
        plan.targetFormat = "raw";
        plan.virtualSize = virtualSize;
        plan.originalLength = descriptor.length;
        plan.finalLength = dataLength;
        plan.keptBytes = virtualSize;
        plan.journalBytes = journalBytes(spec);
        plan.extraSpace = roundUp(plan.journalBytes, 4096); // the journal; nothing else is written
        plan.availableSpace = dir.usableSpace();
        plan.policy = "rename";
        plan.keepRollback = request.keepRollback();
        plan.replacesRollbackRecord = dir.exists(file.rollbackName());
        plan.notes.add("nothing moves: the flat extent " + dataName + " is renamed over " + file.name()
                + " and is the raw image; the descriptor's text is kept in the journal"
                + (request.keepRollback() ? " (and in the rollback record: 'rollback' restores both files)"
                : " until the rename is durable"));
        clock.phase("check");
        return new Planned(spec, plan.freeze(clock.stop()));
    }

    /**
     * The pair to another format: the data file is planned as a raw image
     * converted in place (its own journal and, until the rename, its own
     * rollback record, so that a crash before the rename is undone to the
     * untouched pair), then renamed over the descriptor.
     */
    private static Planned planJoinConverting(ConversionFile file, InPlaceConverter.Request request,
                                              PhaseClock clock, String sourceFormat, String dataName,
                                              byte[] descriptor, long dataLength) throws IOException {
        StorageDir dir = file.dir();
        for (String sidecar : new String[]{dataName + io.diskmorph.image.Images.JOURNAL_SUFFIX,
                dataName + io.diskmorph.image.Images.ROLLBACK_SUFFIX}) {
            if (dir.exists(sidecar)) {
                throw new UnsupportedFeatureException(file.displayName() + ": the flat extent has a journal or "
                        + "rollback record of its own (" + sidecar + "); run 'diskmorph recover' on it or remove "
                        + "the record first");
            }
        }
        InPlaceConverter.Request inner = new InPlaceConverter.Request("raw", request.targetFormat(),
                request.options(), true);
        ConversionPlan dataPlan;
        try (ConversionFile data = DataFileOpener.DEFAULT.open(dir, dataName, LockMode.SHARED)) {
            dataPlan = InPlaceConverter.plan(data, inner);
        }
        Spec spec = new Spec(Direction.JOIN, dataName, descriptor, dataLength, sourceFormat,
                request.targetFormat(), request.keepRollback());
        ConversionPlan plan = dataPlan.relabeled(sourceFormat, journalBytes(spec), "the flat extent " + dataName
                + " is converted in place like a raw file (these figures), then renamed over "
                + file.name() + "; the descriptor's text is kept in the journal" + (request.keepRollback()
                ? ", and with the extent's own record (" + dataName + io.diskmorph.image.Images.ROLLBACK_SUFFIX
                + ") in the rollback record: 'rollback' restores both files" : " until the rename is durable"),
                request.keepRollback());
        clock.phase("check");
        return new Planned(spec, plan, inner);
    }

    /**
     * Carries out a planned pair -> another format: journal; the data file
     * converted in place (with its own rollback record); the rename (the
     * commit point); the records go. A cancel or failure before the rename
     * leaves the data file raw again (the inner conversion restores it) and
     * the journal goes.
     */
    static ConversionPlan executeJoinConverting(StorageDir dir, String name, Planned planned,
                                                InPlaceConverter.Progress progress, Cancellation cancel,
                                                DataFileOpener opener) throws IOException {
        Spec spec = planned.spec();
        String journal = name + io.diskmorph.image.Images.JOURNAL_SUFFIX;
        String dataJournal = spec.dataName() + io.diskmorph.image.Images.JOURNAL_SUFFIX;
        String dataRecord = spec.dataName() + io.diskmorph.image.Images.ROLLBACK_SUFFIX;
        ConversionPlan done;
        try (ConversionFile data = opener.open(dir, spec.dataName(), LockMode.EXCLUSIVE)) {
            writeJournal(dir, journal, spec, new State(MODE_CONVERT, 0, 0, 0, 0));
            dir.sync();
            try {
                done = InPlaceConverter.convert(data, planned.dataConversion(), progress, cancel);
            } catch (Cancellation.CancelledException e) {
                dir.delete(journal);
                dir.sync();
                throw new Cancellation.CancelledException(e.reason(), true);
            } catch (IOException | RuntimeException e) {
                if (!dir.exists(dataJournal) && !dir.exists(dataRecord)) { // restored: the pair as it was
                    dir.delete(journal);
                    dir.sync();
                }
                throw e;
            }
            dir.rename(spec.dataName(), name);
            dir.sync();
            finishConverting(dir, name, spec);
        }
        return planned.plan().withPhases(done.phaseSeconds());
    }

    /**
     * After the rename of a pair -> another format: with a rollback record,
     * the journal becomes NAME.dmrollback and the data file's own record
     * stays under its name (DATA.dmrollback): a rollback needs both; without,
     * both go.
     */
    private static void finishConverting(StorageDir dir, String name, Spec spec) throws IOException {
        if (spec.keepRollback()) {
            finish(dir, name, spec);
            return;
        }
        dir.delete(spec.dataName() + io.diskmorph.image.Images.ROLLBACK_SUFFIX);
        dir.delete(name + io.diskmorph.image.Images.JOURNAL_SUFFIX);
        dir.delete(name + io.diskmorph.image.Images.ROLLBACK_SUFFIX);
        dir.sync();
    }

    /**
     * The rollback of a pair -> another format, idempotent: the converted
     * file gets the data file's name again (a hard link), is rolled back to
     * raw with its own record (or its interrupted rollback finished), and
     * the descriptor takes the path.
     */
    private static void rollbackConverting(StorageDir dir, String name, Spec spec, DataFileOpener opener)
            throws IOException {
        if (holds(dir, name, spec.descriptor())) {
            dir.delete(name + TEMP_SUFFIX);
            return;
        }
        if (!dir.exists(spec.dataName())) {
            dir.link(name, spec.dataName());
            dir.sync();
        }
        // the data file is the image's own file under a second name now: the image's lock covers it
        try (ConversionFile data = opener.open(dir, spec.dataName(), LockMode.NONE)) {
            if (dir.exists(spec.dataName() + io.diskmorph.image.Images.JOURNAL_SUFFIX)) {
                Recovery.recover(data, true);
            } else if (dir.exists(spec.dataName() + io.diskmorph.image.Images.ROLLBACK_SUFFIX)) {
                Recovery.rollback(data, true);
            }
        }
        toPair(dir, name, spec);
    }

    /** Recover of a pair -> another format: before the rename the data file is put back as raw. */
    private static Recovery.Outcome recoverJoinConverting(StorageDir dir, String name, String displayName,
                                                          Spec spec, int mode, boolean pathHoldsDescriptor,
                                                          DataFileOpener opener) throws IOException {
        String journal = name + io.diskmorph.image.Images.JOURNAL_SUFFIX;
        String dataJournal = spec.dataName() + io.diskmorph.image.Images.JOURNAL_SUFFIX;
        String dataRecord = spec.dataName() + io.diskmorph.image.Images.ROLLBACK_SUFFIX;
        String keep = "; the journal " + journal + " is kept (remove it by hand if it belongs to no file)";
        boolean dataExists = dir.exists(spec.dataName());
        if (mode == MODE_ROLLBACK) {
            rollbackConverting(dir, name, spec, opener);
            dir.delete(journal);
            dir.sync();
            return Recovery.Outcome.ROLLED_BACK;
        }
        if (dataExists != pathHoldsDescriptor) {
            throw new JournalMismatchException(displayName + (dataExists ? " is not the descriptor its journal "
                    + "saved, and " + spec.dataName() + " still exists" : " still holds the descriptor, but its "
                    + "flat extent " + spec.dataName() + " is gone") + ": not a state the conversion leaves" + keep);
        }
        if (dataExists) { // before the rename: the data file back to raw, byte for byte
            try (ConversionFile data = opener.open(dir, spec.dataName(), LockMode.EXCLUSIVE)) {
                if (dir.exists(dataJournal)) {
                    Recovery.recover(data, true);
                }
                if (dir.exists(dataRecord)) {
                    Recovery.rollback(data, true);
                }
            }
            dir.delete(journal);
            dir.sync();
            return Recovery.Outcome.RESTORED_SOURCE;
        }
        finishConverting(dir, name, spec);
        return Recovery.Outcome.COMPLETED_TARGET;
    }

    /** {@link #planJoin} or {@link #planSplit}: null when the request is no switch of a pair. */
    static Planned plan(ConversionFile file, InPlaceConverter.Request request, PhaseClock clock) throws IOException {
        Planned p = planJoin(file, request, clock);
        return p != null ? p : planSplit(file, request, clock);
    }

    /**
     * Plans a conversion of a raw file to a descriptor + flat data pair
     * (VMDK monolithicFlat): the raw file keeps every byte and takes the
     * data file's name, the descriptor takes the path. Null when the target
     * cannot describe a raw file ({@link FlatDescriptorFormat}) or the
     * options ask for another layout, or the file is not raw.
     */
    static Planned planSplit(ConversionFile file, InPlaceConverter.Request request, PhaseClock clock)
            throws IOException {
        if (file.path() == null) {
            return null;
        }
        ImageFormat target = FormatRegistry.byName(request.targetFormat());
        if (!(target instanceof FlatDescriptorFormat describer)) {
            return null;
        }
        Storage image = file.image();
        ImageFormat sourceFormat = request.sourceFormat() != null ? FormatRegistry.byName(request.sourceFormat())
                : FormatRegistry.probe(image);
        if (sourceFormat != FormatRegistry.plainFormat()) {
            return null; // only a raw file is the disk as it is
        }
        long virtualSize = image.size();
        FlatDescriptorFormat.FlatDescriptor fd = describer.flatDescriptor(file.name(), virtualSize,
                request.options());
        if (fd == null) {
            return null;
        }
        String name = file.displayName();
        StorageDir dir = file.dir();
        if (dir.exists(file.journalName())) {
            throw new InterruptedConversionException(name, file.journalName());
        }
        if (java.nio.file.Files.isSymbolicLink(file.path())) {
            throw new UnsupportedFeatureException(name + " is a symbolic link: the descriptor would replace the "
                    + "link's target, not this name (convert the image by its real path)");
        }
        FileIdentity id = dir.identity(file.name());
        if (id.links() > 1) {
            throw new UnsupportedFeatureException(name + " has " + id.links() + " hard links; the other names "
                    + "would keep naming the data file, not the descriptor (remove the other links, or convert a "
                    + "copy)");
        }
        if (dir.exists(fd.dataName()) || dir.isSymbolicLink(fd.dataName())) {
            throw new UnsupportedFeatureException(name + ": the raw file would be renamed to " + fd.dataName()
                    + ", which exists; move that file away first");
        }
        Spec spec = new Spec(Direction.SPLIT, fd.dataName(), fd.descriptor(), virtualSize, sourceFormat.name(),
                target.name(), request.keepRollback());
        ConversionPlan.Draft plan = new ConversionPlan.Draft();
        plan.sourceFormat = sourceFormat.name();
        plan.targetFormat = target.name();
        plan.virtualSize = virtualSize;
        plan.originalLength = virtualSize;
        plan.finalLength = fd.descriptor().length;
        plan.keptBytes = virtualSize;
        plan.metadataBytes = fd.descriptor().length;
        plan.journalBytes = journalBytes(spec);
        // the journal, the descriptor and its temporary copy
        plan.extraSpace = roundUp(plan.journalBytes, 4096) + 2 * roundUp(fd.descriptor().length, 4096);
        plan.availableSpace = dir.usableSpace();
        plan.policy = "rename";
        plan.keepRollback = request.keepRollback();
        plan.replacesRollbackRecord = dir.exists(file.rollbackName());
        plan.notes.add("nothing moves: " + file.name() + " is renamed to " + fd.dataName() + " (the flat "
                + "extent, every byte as it is) and a " + fd.descriptor().length + "-byte descriptor naming it "
                + "takes the name " + file.name());
        clock.phase("check");
        return new Planned(spec, plan.freeze(clock.stop()));
    }

    // ---- execution ----

    /**
     * Carries out a planned switch of the pair at {@code name} in {@code dir}.
     * Before the commit point a cancel request removes the journal and
     * throws; after it the switch completes.
     */
    static void execute(StorageDir dir, String name, Spec spec, Cancellation cancel) throws IOException {
        try (Storage lock = lockData(dir, spec)) {
            String journal = name + io.diskmorph.image.Images.JOURNAL_SUFFIX;
            writeJournal(dir, journal, spec, new State(MODE_CONVERT, 0, 0, 0, 0));
            dir.sync();
            if (cancel.requested()) {
                dir.delete(journal);
                dir.sync();
                throw new Cancellation.CancelledException(cancel.reason(), true);
            }
            if (spec.direction() == Direction.JOIN) {
                toRaw(dir, name, spec);
            } else {
                toPair(dir, name, spec);
            }
            finish(dir, name, spec);
        }
    }

    /** The data file locked exclusively for the switch (QEMU's lock bytes), on a real file system. */
    private static Storage lockData(StorageDir dir, Spec spec) throws IOException {
        if (spec.direction() == Direction.JOIN && dir instanceof FileStorageDir fd) {
            return FileStorage.open(fd.path(spec.dataName()), false, LockMode.EXCLUSIVE);
        }
        return null;
    }

    /** The data file takes the path (one rename, the commit point of a JOIN). Idempotent. */
    private static void toRaw(StorageDir dir, String name, Spec spec) throws IOException {
        if (dir.exists(spec.dataName())) {
            dir.rename(spec.dataName(), name);
            dir.sync();
        }
        dir.delete(name + TEMP_SUFFIX);
    }

    /** The raw file gets the data file's name, the descriptor takes the path (the commit point of a SPLIT). Idempotent. */
    private static void toPair(StorageDir dir, String name, Spec spec) throws IOException {
        String temp = name + TEMP_SUFFIX;
        if (holds(dir, name, spec.descriptor())) {
            dir.delete(temp);
            return;
        }
        if (!dir.exists(spec.dataName())) {
            dir.link(name, spec.dataName());
            dir.sync();
        }
        try (Storage t = dir.create(temp)) {
            t.write(ByteBuffer.wrap(spec.descriptor()), 0);
            t.sync();
        }
        dir.rename(temp, name);
        dir.sync();
    }

    /**
     * After the commit point: drop the journal, or stamp it and keep it as
     * the rollback record (replacing an earlier one, which no longer
     * matches); a stale record of an earlier conversion goes either way.
     */
    private static void finish(StorageDir dir, String name, Spec spec) throws IOException {
        String journal = name + io.diskmorph.image.Images.JOURNAL_SUFFIX;
        String record = name + io.diskmorph.image.Images.ROLLBACK_SUFFIX;
        if (spec.keepRollback()) {
            State s = stamp(dir, name, spec, MODE_CONVERT);
            try (Storage js = dir.open(journal, false)) {
                js.write(ByteBuffer.wrap(encodeState(s)), 0);
                js.sync();
            }
            dir.rename(journal, record);
        } else {
            dir.delete(journal);
            dir.delete(record);
        }
        dir.sync();
    }

    private static State stamp(StorageDir dir, String name, Spec spec, int mode) throws IOException {
        long pathSize;
        try (Storage s = dir.open(name, true)) {
            pathSize = s.size();
        }
        long dataSize = 0;
        long dataStamp = 0;
        if (dir.exists(spec.dataName())) {
            try (Storage s = dir.open(spec.dataName(), true)) {
                dataSize = s.size();
            }
            dataStamp = dir.changeStamp(spec.dataName());
        }
        return new State(mode, pathSize, dir.changeStamp(name), dataSize, dataStamp);
    }

    // ---- recover, rollback ----

    /** True when the journal or rollback record {@code journalName} is one of this kind. */
    static boolean isPairJournal(StorageDir dir, String journalName) throws IOException {
        try (Storage js = dir.open(journalName, true)) {
            if (js.size() < STATE_MAGIC.length) {
                return false;
            }
            byte[] m = new byte[STATE_MAGIC.length];
            js.read(ByteBuffer.wrap(m), 0);
            return Arrays.equals(m, STATE_MAGIC);
        }
    }

    /** {@link Recovery#recover} for a journal of this kind. */
    static Recovery.Outcome recover(StorageDir dir, String name, String displayName) throws IOException {
        return recover(dir, name, displayName, DataFileOpener.DEFAULT);
    }

    static Recovery.Outcome recover(StorageDir dir, String name, String displayName, DataFileOpener opener)
            throws IOException {
        String journal = name + io.diskmorph.image.Images.JOURNAL_SUFFIX;
        Spec spec;
        State state;
        try (Storage js = dir.open(journal, true)) {
            spec = readSpec(js);
            state = readState(js);
        }
        if (spec == null || state == null) { // torn: written before anything else was touched
            dir.delete(journal);
            dir.sync();
            return Recovery.Outcome.DISCARDED_TORN_JOURNAL;
        }
        boolean pathHoldsDescriptor = holds(dir, name, spec.descriptor());
        if (spec.direction() == Direction.JOIN && !spec.targetFormat().equals("raw")) {
            return recoverJoinConverting(dir, name, displayName, spec, state.mode(), pathHoldsDescriptor, opener);
        }
        boolean dataExists = dir.exists(spec.dataName());
        if (state.mode() == MODE_ROLLBACK) {
            if (spec.direction() == Direction.JOIN) {
                toPair(dir, name, spec);
            } else {
                toRaw(dir, name, spec);
            }
            dir.delete(journal);
            dir.sync();
            return Recovery.Outcome.ROLLED_BACK;
        }
        String keep = "; the journal " + journal + " is kept (remove it by hand if it belongs to no file)";
        if (!pathHoldsDescriptor && sizeOf(dir, name) != spec.dataLength()) {
            throw new JournalMismatchException(displayName + " holds neither the descriptor its journal saved nor "
                    + "the " + spec.dataLength() + "-byte data file: it is not the image the journal belongs to"
                    + keep);
        }
        boolean committed = spec.direction() == Direction.JOIN ? !dataExists : pathHoldsDescriptor;
        if (spec.direction() == Direction.JOIN && dataExists != pathHoldsDescriptor) {
            throw new JournalMismatchException(dataExists
                    ? displayName + " is not the descriptor its journal saved, and " + spec.dataName()
                    + " still exists: they are not the files the journal belongs to" + keep
                    : displayName + " still holds the descriptor, but its flat extent " + spec.dataName()
                    + " is gone: not a state the conversion leaves" + keep);
        }
        if (committed) {
            dir.delete(name + TEMP_SUFFIX);
            finish(dir, name, spec);
            return Recovery.Outcome.COMPLETED_TARGET;
        }
        if (spec.direction() == Direction.SPLIT) { // undo: the data file's name is the link this switch made
            dir.delete(name + TEMP_SUFFIX);
            if (dataExists) {
                dir.delete(spec.dataName());
            }
        }
        dir.delete(journal);
        dir.sync();
        return Recovery.Outcome.RESTORED_SOURCE;
    }

    /** {@link Recovery#rollback} for a record of this kind: both files back, byte for byte. */
    static void rollback(StorageDir dir, String name, String displayName) throws IOException {
        rollback(dir, name, displayName, DataFileOpener.DEFAULT);
    }

    static void rollback(StorageDir dir, String name, String displayName, DataFileOpener opener)
            throws IOException {
        String journal = name + io.diskmorph.image.Images.JOURNAL_SUFFIX;
        String record = name + io.diskmorph.image.Images.ROLLBACK_SUFFIX;
        Spec spec;
        State state;
        try (Storage js = dir.open(record, true)) {
            spec = readSpec(js);
            state = readState(js);
        }
        if (spec == null || state == null || (state.mode() == MODE_CONVERT && state.pathSize() == 0)) {
            throw new ImageException(displayName + ": the rollback record " + record + " is damaged");
        }
        if (state.mode() != MODE_ROLLBACK) {
            State now = stamp(dir, name, spec, MODE_CONVERT);
            if (!now.equals(state)) {
                throw new ImageException(displayName + (spec.direction() == Direction.SPLIT ? " or "
                        + spec.dataName() : "") + " was written or replaced after the conversion; a rollback would "
                        + "lose those writes (refusing; the rollback record is kept)");
            }
            if (spec.direction() == Direction.JOIN && dir.exists(spec.dataName())) {
                throw new ImageException(displayName + ": " + spec.dataName() + " exists again; the rollback "
                        + "would need that name for the flat extent (refusing; the rollback record is kept)");
            }
            String dataRecord = spec.dataName() + io.diskmorph.image.Images.ROLLBACK_SUFFIX;
            if (converting(spec) && !dir.exists(dataRecord)) {
                throw new ImageException(displayName + ": the flat extent's own rollback record " + dataRecord
                        + " is missing; without it the " + spec.targetFormat() + " image cannot become the raw "
                        + "extent again (refusing; the rollback record is kept)");
            }
            try (Storage js = dir.open(record, false)) {
                js.write(ByteBuffer.wrap(encodeState(new State(MODE_ROLLBACK, state.pathSize(), state.pathStamp(),
                        state.dataSize(), state.dataStamp()))), 0);
                js.sync();
            }
        }
        // as a journal in rollback mode it blocks other users until done, and recover finishes it
        dir.rename(record, journal);
        dir.sync();
        if (converting(spec)) {
            rollbackConverting(dir, name, spec, opener);
        } else if (spec.direction() == Direction.JOIN) {
            toPair(dir, name, spec);
        } else {
            toRaw(dir, name, spec);
        }
        dir.delete(journal);
        dir.sync();
    }

    /** A pair converted to another format than raw (its data file converted in place, then renamed). */
    private static boolean converting(Spec spec) {
        return spec.direction() == Direction.JOIN && !spec.targetFormat().equals("raw");
    }

    // ---- the journal ----

    private static void writeJournal(StorageDir dir, String journal, Spec spec, State state) throws IOException {
        try (Storage js = dir.create(journal)) {
            js.write(ByteBuffer.wrap(encodeBody(spec)), SECTOR);
            js.write(ByteBuffer.wrap(encodeState(state)), 0);
            js.sync();
        }
    }

    static long journalBytes(Spec spec) {
        return SECTOR + encodeBody(spec).length;
    }

    private static byte[] encodeState(State s) {
        ByteBuffer b = ByteBuffer.allocate(SECTOR);
        b.put(STATE_MAGIC).putInt(s.mode()).putLong(s.pathSize()).putLong(s.pathStamp()).putLong(s.dataSize())
                .putLong(s.dataStamp());
        b.putInt(crc(b.array(), 0, STATE_BYTES - 4));
        return b.array();
    }

    private static State readState(Storage js) throws IOException {
        if (js.size() < SECTOR) {
            return null;
        }
        byte[] a = new byte[STATE_BYTES];
        js.read(ByteBuffer.wrap(a), 0);
        ByteBuffer b = ByteBuffer.wrap(a);
        if (!Arrays.equals(Arrays.copyOf(a, 8), STATE_MAGIC) || b.getInt(STATE_BYTES - 4) != crc(a, 0,
                STATE_BYTES - 4)) {
            return null;
        }
        b.position(8);
        State s = new State(b.getInt(), b.getLong(), b.getLong(), b.getLong(), b.getLong());
        return s.mode() == MODE_CONVERT || s.mode() == MODE_ROLLBACK ? s : null;
    }

    private static byte[] encodeBody(Spec spec) {
        byte[] data = spec.dataName().getBytes(StandardCharsets.UTF_8);
        byte[] sf = spec.sourceFormat().getBytes(StandardCharsets.UTF_8);
        byte[] tf = spec.targetFormat().getBytes(StandardCharsets.UTF_8);
        ByteBuffer b = ByteBuffer.allocate(8 + 4 + 4 + 8 + 4 + data.length + 4 + sf.length + 4 + tf.length + 4
                + spec.descriptor().length + 4);
        b.put(BODY_MAGIC).putInt(spec.direction().ordinal()).putInt(spec.keepRollback() ? 1 : 0)
                .putLong(spec.dataLength());
        b.putInt(data.length).put(data).putInt(sf.length).put(sf).putInt(tf.length).put(tf);
        b.putInt(spec.descriptor().length).put(spec.descriptor());
        b.putInt(crc(b.array(), 0, b.position()));
        return b.array();
    }

    /** The body, or null when it is torn (a bad magic, length or CRC). */
    private static Spec readSpec(Storage js) throws IOException {
        long len = js.size() - SECTOR;
        if (len < 8 + 4 + 4 + 8 + 4 * 5 + 4 || len > 2L * MAX_DESCRIPTOR_BYTES) {
            return null;
        }
        byte[] a = new byte[(int) len];
        js.read(ByteBuffer.wrap(a), SECTOR);
        try {
            ByteBuffer b = ByteBuffer.wrap(a);
            byte[] magic = new byte[8];
            b.get(magic);
            if (!Arrays.equals(magic, BODY_MAGIC)) {
                return null;
            }
            int direction = b.getInt();
            boolean keep = b.getInt() == 1;
            long dataLength = b.getLong();
            String data = string(b);
            String sf = string(b);
            String tf = string(b);
            int n = b.getInt();
            if (n < 0 || n > b.remaining() - 4) {
                return null;
            }
            byte[] desc = new byte[n];
            b.get(desc);
            int end = b.position();
            if (b.getInt() != crc(a, 0, end) || direction < 0 || direction > 1 || dataLength < 0) {
                return null;
            }
            return new Spec(Direction.values()[direction], data, desc, dataLength, sf, tf, keep);
        } catch (java.nio.BufferUnderflowException | IllegalArgumentException e) {
            return null;
        }
    }

    private static String string(ByteBuffer b) {
        int n = b.getInt();
        if (n < 0 || n > b.remaining()) {
            throw new IllegalArgumentException("length");
        }
        byte[] s = new byte[n];
        b.get(s);
        return new String(s, StandardCharsets.UTF_8);
    }

    private static int crc(byte[] a, int off, int len) {
        CRC32C c = new CRC32C();
        c.update(a, off, len);
        return (int) c.getValue();
    }

    // ---- helpers ----

    /** True when the file {@code name} holds exactly {@code bytes}. */
    private static boolean holds(StorageDir dir, String name, byte[] bytes) throws IOException {
        if (!dir.exists(name)) {
            return false;
        }
        try (Storage s = dir.open(name, true)) {
            if (s.size() != bytes.length) {
                return false;
            }
            byte[] a = new byte[bytes.length];
            s.read(ByteBuffer.wrap(a), 0);
            return Arrays.equals(a, bytes);
        }
    }

    private static long sizeOf(StorageDir dir, String name) throws IOException {
        if (!dir.exists(name)) {
            return -1;
        }
        try (Storage s = dir.open(name, true)) {
            return s.size();
        }
    }

    private static byte[] readAll(StorageDir dir, String name) throws IOException {
        try (Storage s = dir.open(name, true)) {
            byte[] a = new byte[(int) s.size()];
            s.read(ByteBuffer.wrap(a), 0);
            return a;
        }
    }

    private static long roundUp(long v, long to) {
        return Math.ceilDiv(v, to) * to;
    }
}
