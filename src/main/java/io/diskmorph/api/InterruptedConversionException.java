package io.diskmorph.api;

/**
 * The image has the journal of an in-place conversion that did not finish: run {@link Diskmorph#recover} first.
 * The CLI ends with exit code {@value #EXIT_CODE} for this failure.
 */
public class InterruptedConversionException extends DiskmorphException {
    private static final long serialVersionUID = 1L;

    /** The CLI's exit code for this failure. */
    public static final int EXIT_CODE = 69;

    /**
     * Makes the exception.
     *
     * @param message one line naming what is wrong and where
     * @param cause   the internal failure, or null
     */
    public InterruptedConversionException(String message, Throwable cause) {
        super(message, cause, EXIT_CODE);
    }
}
