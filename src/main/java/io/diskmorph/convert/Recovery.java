package io.diskmorph.convert;

import io.diskmorph.image.ImageException;
import io.diskmorph.image.JournalMismatchException;
import io.diskmorph.storage.FileIdentity;
import io.diskmorph.storage.Storage;

import java.io.IOException;

/**
 * Finishing or undoing an in-place conversion from its journal; every step
 * is idempotent, so a crash during recovery is mended by running it again.
 */
public final class Recovery {
    private Recovery() {
    }

    /** What {@link #recover} found and did. */
    public enum Outcome {
        /** No journal: the image is not in the middle of a conversion. */
        NOTHING_TO_DO("no interrupted conversion; nothing to do"),
        /** The journal was torn while being written: the image was never touched. */
        DISCARDED_TORN_JOURNAL("the conversion stopped before touching the image; removed its incomplete journal"),
        /** Crashed before the switch: the original image was restored from the journal. */
        RESTORED_SOURCE("the conversion had not committed; restored the original image"),
        /** Crashed after the switch: the conversion was completed. */
        COMPLETED_TARGET("the conversion had committed; finished it"),
        /** A rollback was interrupted and has now been completed. */
        ROLLED_BACK("completed the interrupted rollback; the original image is back");

        private final String text;

        Outcome(String text) {
            this.text = text;
        }

        public String text() {
            return text;
        }
    }

    /** Recovers an image whose conversion (or rollback) was interrupted. */
    public static Outcome recover(ConversionFile file) throws IOException {
        return recover(file, false);
    }

    /**
     * Recovers an image whose conversion (or rollback) was interrupted, after
     * making sure the journal belongs to it ({@link #checkOwnership}).
     *
     * @param acceptMoved the image was moved or copied to another file together with its journal: identify it
     *                    by its content only, not by its inode
     */
    public static Outcome recover(ConversionFile file, boolean acceptMoved) throws IOException {
        return recover(file, acceptMoved, InPlaceConverter.Progress.NONE);
    }

    /**
     * {@link #recover(ConversionFile, boolean)}, telling {@code progress} its
     * phases: "journal" (the journal's bytes read and its ownership judged),
     * then "restore" (the saved bytes put back, of those the journal holds),
     * "sync" and "cleanup", or "complete" (the committed conversion's final
     * length, synced) and "cleanup"; a descriptor + data file journal:
     * "switch" (renames). Phases without a byte count are announced with a
     * total of 0.
     */
    public static Outcome recover(ConversionFile file, boolean acceptMoved, io.diskmorph.image.PhaseProgress progress)
            throws IOException {
        if (!file.dir().exists(file.journalName())) {
            return Outcome.NOTHING_TO_DO;
        }
        if (FlatPairSwitch.isPairJournal(file.dir(), file.journalName())) { // a descriptor + data file switch
            progress.update("switch", 0, 0);
            return FlatPairSwitch.recover(file.dir(), file.name(), file.displayName());
        }
        Journal journal;
        Journal.State state;
        try (Storage js = file.dir().open(file.journalName(), true)) {
            long journalBytes = js.size();
            progress.update("journal", 0, journalBytes);
            journal = Journal.read(js);
            state = Journal.readState(js);
            if (journal != null) {
                checkOwnership(file, journal, js, acceptMoved, file.journalName());
            }
            progress.update("journal", journalBytes, journalBytes);
        }
        if (journal == null) {
            progress.update("cleanup", 0, 0);
            file.dir().delete(file.journalName());
            file.dir().sync();
            return Outcome.DISCARDED_TORN_JOURNAL;
        }
        boolean rollback = state != null && state.mode() == Journal.MODE_ROLLBACK;
        if (!rollback && journal.committed(file.image())) {
            progress.update("complete", 0, 0);
            finishCommitted(file, journal);
            return Outcome.COMPLETED_TARGET;
        }
        restore(file, journal, progress);
        return rollback ? Outcome.ROLLED_BACK : Outcome.RESTORED_SOURCE;
    }

    /**
     * Refuses a journal that was not written for this file, before a byte of
     * it is applied: the file must be the same inode (and birth time, where
     * recorded) unless {@code acceptMoved}; it must be at least as long as
     * the conversion ever left it; the commit record's places must hold the
     * original bytes or the target's; and every witness range (never written
     * by the conversion) must hold what it held when the journal was made.
     * A file replaced under the same name (a new image, a backup copied
     * over it, another file moved there) fails one of these.
     */
    static void checkOwnership(ConversionFile file, Journal journal, Storage js, boolean acceptMoved,
                               String journalName) throws IOException {
        Storage image = file.image();
        String name = file.displayName();
        String keep = "; the journal " + journalName + " is kept (remove it by hand if it belongs to no file)";
        if (journal.identity != null && !acceptMoved) {
            FileIdentity now = file.dir().identity(file.name());
            if (!journal.identity.sameFile(now)) {
                throw new JournalMismatchException(name + " is not the file its journal was written for (that was "
                        + journal.identity + ", this is " + now + "): it was replaced, moved or copied since. If it "
                        + "is the interrupted image, moved together with its journal, 'diskmorph recover "
                        + "--accept-moved " + name + "' identifies it by its content" + keep);
            }
        }
        long size = image.size();
        long shortest = Math.min(journal.originalLength, journal.finalLength);
        if (size < shortest) {
            throw new JournalMismatchException(name + " is " + size + " bytes long, shorter than the interrupted "
                    + "conversion ever left it (" + shortest + "): it is not the image the journal belongs to" + keep);
        }
        for (io.diskmorph.image.CommitRecord.Write c : journal.commit) {
            if (Journal.holds(image, c.offset(), c.bytes())) {
                continue;
            }
            byte[] original = journal.originalBytes(js, c.offset(), c.length());
            if (original != null && !Journal.holds(image, c.offset(), original)) {
                throw new JournalMismatchException(name + ": the " + c.length() + " bytes at offset "
                        + c.offset() + " are neither the original " + journal.sourceFormat + " header nor the "
                        + journal.targetFormat + " one the conversion writes: it is not the image the journal "
                        + "belongs to" + keep);
            }
        }
        for (Journal.Witness w : journal.witnesses) {
            if (w.offset() + w.length() > size || Journal.crcOf(image, w.offset(), w.length()) != w.crc()) {
                throw new JournalMismatchException(name + ": its content at offset " + w.offset() + " differs from "
                        + "what the interrupted conversion left there: it is not the image the journal belongs to"
                        + keep);
            }
        }
    }

    /** Puts the original bytes back, cuts the file to its original length, drops the journal. */
    static void restore(ConversionFile file, Journal journal) throws IOException {
        restore(file, journal, InPlaceConverter.Progress.NONE);
    }

    private static void restore(ConversionFile file, Journal journal, io.diskmorph.image.PhaseProgress progress)
            throws IOException {
        Storage image = file.image();
        try (Storage js = file.dir().open(file.journalName(), true)) {
            journal.restore(js, image, progress);
        }
        progress.update("sync", 0, 0);
        image.sync();
        image.truncate(journal.originalLength);
        image.sync();
        progress.update("cleanup", 0, 0);
        file.dir().delete(file.journalName());
        file.dir().sync();
    }

    /**
     * After the switch: give the file its final length, then retire the
     * journal, or keep it as the rollback record stamped with the image's
     * state so a later rollback can tell whether the image was written since.
     */
    static void finishCommitted(ConversionFile file, Journal journal) throws IOException {
        Storage image = file.image();
        if (image.size() != journal.finalLength) {
            image.truncate(journal.finalLength);
        }
        image.sync();
        Journal.State state;
        try (Storage js = file.dir().open(file.journalName(), true)) {
            state = Journal.readState(js);
        }
        if (state != null && state.keepRollback()) {
            try (Storage js = file.dir().open(file.journalName(), false)) {
                Journal.writeState(js, new Journal.State(Journal.MODE_CONVERT, state.flags(), image.size(),
                        file.dir().changeStamp(file.name())), true);
            }
            file.dir().rename(file.journalName(), file.rollbackName());
        } else {
            file.dir().delete(file.journalName());
        }
        file.dir().sync();
    }

    /**
     * Undoes a finished conversion kept with --keep-rollback: the original
     * format, byte for byte. Refuses when the image was written since, since
     * those writes would be lost.
     */
    public static void rollback(ConversionFile file) throws IOException {
        rollback(file, false);
    }

    /** {@link #rollback(ConversionFile)}; {@code acceptMoved} as for {@link #recover(ConversionFile, boolean)}. */
    public static void rollback(ConversionFile file, boolean acceptMoved) throws IOException {
        rollback(file, acceptMoved, InPlaceConverter.Progress.NONE);
    }

    /**
     * {@link #rollback(ConversionFile, boolean)}, telling {@code progress} its
     * phases: "journal" (the record's bytes read and judged), "switch" (the
     * record becomes the journal: from here recover finishes the rollback),
     * "restore" (bytes put back, of those the record holds), "sync",
     * "cleanup"; a descriptor + data file record: "switch" (renames).
     */
    public static void rollback(ConversionFile file, boolean acceptMoved, io.diskmorph.image.PhaseProgress progress)
            throws IOException {
        if (file.dir().exists(file.journalName())) {
            throw new io.diskmorph.image.InterruptedConversionException(
                    file.path() != null ? file.path().toString() : file.name(), file.journalName());
        }
        if (!file.dir().exists(file.rollbackName())) {
            throw new ImageException(file.name() + ": no rollback record (convert with --keep-rollback to keep one)");
        }
        if (FlatPairSwitch.isPairJournal(file.dir(), file.rollbackName())) {
            progress.update("switch", 0, 0);
            FlatPairSwitch.rollback(file.dir(), file.name(), file.displayName());
            return;
        }
        Journal journal;
        Journal.State state;
        try (Storage js = file.dir().open(file.rollbackName(), true)) {
            long recordBytes = js.size();
            progress.update("journal", 0, recordBytes);
            journal = Journal.read(js);
            state = Journal.readState(js);
            if (journal == null || state == null
                    || (state.mode() == Journal.MODE_CONVERT && state.committedLength() == 0)) {
                throw new ImageException(file.name() + ": the rollback record " + file.rollbackName() + " is damaged");
            }
            checkOwnership(file, journal, js, acceptMoved, file.rollbackName());
            progress.update("journal", recordBytes, recordBytes);
        }
        progress.update("switch", 0, 0);
        if (state.mode() != Journal.MODE_ROLLBACK) {
            long size = file.image().size();
            long stamp = file.dir().changeStamp(file.name());
            if (size != state.committedLength() || stamp != state.committedMtimeNanos()
                    || !journal.committed(file.image())) {
                throw new ImageException(file.name() + " was written after the conversion; a rollback would lose "
                        + "those writes (refusing; the rollback record is kept)");
            }
            try (Storage js = file.dir().open(file.rollbackName(), false)) {
                Journal.writeState(js, new Journal.State(Journal.MODE_ROLLBACK, state.flags(), state.committedLength(),
                        state.committedMtimeNanos()), true);
            }
        }
        // as a journal in rollback mode it blocks other users until done, and recover can finish it
        file.dir().rename(file.rollbackName(), file.journalName());
        file.dir().sync();
        restore(file, journal, progress);
    }
}
