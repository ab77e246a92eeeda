package io.diskmorph.api;

/**
 * An in-place conversion or a copy stopped because its {@link Cancellation}
 * was requested. A copy leaves no target file. An in-place conversion leaves
 * the image as a crash at that point would be mended: the original bytes
 * back, or ({@link #validAs()}) a valid image of an intermediate format with
 * the same content, which running the conversion again continues. The CLI
 * ends with exit code {@value #EXIT_CODE} (128 + SIGINT) when the user stops
 * it the same way.
 */
public class ConversionCancelledException extends DiskmorphException {
    private static final long serialVersionUID = 1L;

    /** The CLI's exit code for this failure. */
    public static final int EXIT_CODE = 130;

    /** The format of the valid image left behind, or null when the original is back. */
    private final String validAs;

    /**
     * Makes the exception.
     *
     * @param message one line saying what was stopped and what is left
     * @param cause   the internal failure, or null
     * @param validAs the format of the valid image a roll-forward left, or null when the original is back
     */
    public ConversionCancelledException(String message, Throwable cause, String validAs) {
        super(message, cause, EXIT_CODE);
        this.validAs = validAs;
    }

    /**
     * The format of the valid image a stopped roll-forward left (part of its
     * data moved, the guest content unchanged), or null when the original
     * image is back as it was.
     *
     * @return a format name such as "qcow2", or null
     */
    public String validAs() {
        return validAs;
    }
}
