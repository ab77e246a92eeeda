package io.diskmorph.api;

/**
 * The image, or a feature it uses, is one diskmorph names but cannot handle (an encrypted image, a format it refuses by name): it never guesses.
 * The CLI ends with exit code {@value #EXIT_CODE} for this failure.
 */
public class UnsupportedImageException extends DiskmorphException {
    private static final long serialVersionUID = 1L;

    /** The CLI's exit code for this failure. */
    public static final int EXIT_CODE = 66;

    /**
     * Makes the exception.
     *
     * @param message one line naming what is wrong and where
     * @param cause   the internal failure, or null
     */
    public UnsupportedImageException(String message, Throwable cause) {
        super(message, cause, EXIT_CODE);
    }
}
