package io.diskmorph.api;

/**
 * Both images opened but walking one of them failed (qemu-img compare's
 * exit codes: {@value #ALLOCATION_FAILED} when the allocation status could
 * not be read, {@value #READ_FAILED} when the data could not).
 */
public class CompareFailedException extends DiskmorphException {
    private static final long serialVersionUID = 1L;

    /** Exit code when the allocation status of one image could not be read. */
    public static final int ALLOCATION_FAILED = 3;
    /** Exit code when the data of one image could not be read. */
    public static final int READ_FAILED = 4;

    /** 1 or 2: the image of the comparison that failed. */
    private final int image;

    /**
     * Makes the exception.
     *
     * @param message  one line naming what is wrong and where
     * @param cause    the internal failure, or null
     * @param exitCode {@link #ALLOCATION_FAILED} or {@link #READ_FAILED}
     * @param image    1 or 2: which image failed
     */
    public CompareFailedException(String message, Throwable cause, int exitCode, int image) {
        super(message, cause, exitCode);
        this.image = image;
    }

    /**
     * Which image the walk failed on.
     *
     * @return 1 for the first image, 2 for the second
     */
    public int image() {
        return image;
    }
}
