package io.diskmorph.api;

/**
 * The file system lacks the free space an operation needs. A refusal before
 * writing leaves every file as it was; a copy that ran out of space removes
 * its partial target. The CLI ends with exit code {@value #EXIT_CODE}.
 */
public class NotEnoughSpaceException extends DiskmorphException {
    private static final long serialVersionUID = 1L;

    /** The CLI's exit code for this failure. */
    public static final int EXIT_CODE = 68;

    /** Bytes the operation needs, or -1 when the file system said "no space" without a figure. */
    private final long needed;
    /** Bytes that were free, or -1 when unknown. */
    private final long available;

    /**
     * Makes the exception.
     *
     * @param message   one line naming what is wrong and where
     * @param cause     the internal failure, or null
     * @param needed    bytes the operation needs, or -1 when unknown
     * @param available bytes that were free, or -1 when unknown
     */
    public NotEnoughSpaceException(String message, Throwable cause, long needed, long available) {
        super(message, cause, EXIT_CODE);
        this.needed = needed;
        this.available = available;
    }

    /**
     * Bytes the operation needs.
     *
     * @return the bytes, or -1 when the file system refused a write without a figure
     */
    public long needed() {
        return needed;
    }

    /**
     * Bytes that were free when the operation was planned.
     *
     * @return the bytes, or -1 when unknown
     */
    public long available() {
        return available;
    }
}
