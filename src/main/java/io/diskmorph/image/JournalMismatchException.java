package io.diskmorph.image;

/**
 * The journal beside an image was written for another file: the image was
 * replaced, moved or copied since the conversion was interrupted, so
 * applying the journal would damage it. The journal is kept.
 */
public class JournalMismatchException extends ImageException {
    public JournalMismatchException(String message) {
        super(message);
    }

    @Override
    public int exitCode() {
        return ExitCodes.JOURNAL_MISMATCH;
    }
}
