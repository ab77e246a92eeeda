package io.diskmorph.api;

/**
 * The request itself is wrong (an unknown option, a missing size, a format that cannot be the target): nothing was read or written.
 * The CLI ends with exit code {@value #EXIT_CODE} for this failure.
 */
public class InvalidRequestException extends DiskmorphException {
    private static final long serialVersionUID = 1L;

    /** The CLI's exit code for this failure. */
    public static final int EXIT_CODE = 64;

    /**
     * Makes the exception.
     *
     * @param message one line naming what is wrong and where
     * @param cause   the internal failure, or null
     */
    public InvalidRequestException(String message, Throwable cause) {
        super(message, cause, EXIT_CODE);
    }
}
