package io.diskmorph.api;

/**
 * A journal or rollback record does not belong to the file beside it (the image was moved, copied or written since); nothing was changed.
 * The CLI ends with exit code {@value #EXIT_CODE} for this failure.
 */
public class JournalMismatchException extends DiskmorphException {
    private static final long serialVersionUID = 1L;

    /** The CLI's exit code for this failure. */
    public static final int EXIT_CODE = 70;

    /**
     * Makes the exception.
     *
     * @param message one line naming what is wrong and where
     * @param cause   the internal failure, or null
     */
    public JournalMismatchException(String message, Throwable cause) {
        super(message, cause, EXIT_CODE);
    }
}
