package io.diskmorph.api;

/**
 * The image's metadata is inconsistent or out of bounds; the message names the structure and its file offset.
 * The CLI ends with exit code {@value #EXIT_CODE} for this failure.
 */
public class CorruptImageException extends DiskmorphException {
    private static final long serialVersionUID = 1L;

    /** The CLI's exit code for this failure. */
    public static final int EXIT_CODE = 65;

    /**
     * Makes the exception.
     *
     * @param message one line naming what is wrong and where
     * @param cause   the internal failure, or null
     */
    public CorruptImageException(String message, Throwable cause) {
        super(message, cause, EXIT_CODE);
    }
}
