package io.diskmorph.convert;

import io.diskmorph.image.ImageException;
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
        if (!file.dir().exists(file.journalName())) {
            return Outcome.NOTHING_TO_DO;
        }
        Journal journal;
        Journal.State state;
        try (Storage js = file.dir().open(file.journalName(), true)) {
            journal = Journal.read(js);
            state = Journal.readState(js);
        }
        if (journal == null) {
            file.dir().delete(file.journalName());
            file.dir().sync();
            return Outcome.DISCARDED_TORN_JOURNAL;
        }
        boolean rollback = state != null && state.mode() == Journal.MODE_ROLLBACK;
        if (!rollback && journal.committed(file.image())) {
            finishCommitted(file, journal);
            return Outcome.COMPLETED_TARGET;
        }
        restore(file, journal);
        return rollback ? Outcome.ROLLED_BACK : Outcome.RESTORED_SOURCE;
    }

    /** Puts the original bytes back, cuts the file to its original length, drops the journal. */
    static void restore(ConversionFile file, Journal journal) throws IOException {
        Storage image = file.image();
        try (Storage js = file.dir().open(file.journalName(), true)) {
            journal.restore(js, image);
        }
        image.sync();
        image.truncate(journal.originalLength);
        image.sync();
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
        if (file.dir().exists(file.journalName())) {
            throw new io.diskmorph.image.InterruptedConversionException(
                    file.path() != null ? file.path().toString() : file.name(), file.journalName());
        }
        if (!file.dir().exists(file.rollbackName())) {
            throw new ImageException(file.name() + ": no rollback record (convert with --keep-rollback to keep one)");
        }
        Journal journal;
        Journal.State state;
        try (Storage js = file.dir().open(file.rollbackName(), true)) {
            journal = Journal.read(js);
            state = Journal.readState(js);
        }
        if (journal == null || state == null || (state.mode() == Journal.MODE_CONVERT && state.committedLength() == 0)) {
            throw new ImageException(file.name() + ": the rollback record " + file.rollbackName() + " is damaged");
        }
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
        restore(file, journal);
    }
}
