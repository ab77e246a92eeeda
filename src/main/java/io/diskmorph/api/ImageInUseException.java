package io.diskmorph.api;

/**
 * Another process holds a lock on the image (a running VM, another conversion).
 * The CLI ends with exit code {@value #EXIT_CODE} for this failure.
 */
public class ImageInUseException extends DiskmorphException {
    private static final long serialVersionUID = 1L;

    /** The CLI's exit code for this failure. */
    public static final int EXIT_CODE = 67;

    /**
     * Makes the exception.
     *
     * @param message one line naming what is wrong and where
     * @param cause   the internal failure, or null
     */
    public ImageInUseException(String message, Throwable cause) {
        super(message, cause, EXIT_CODE);
    }
}
