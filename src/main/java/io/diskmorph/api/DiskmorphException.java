package io.diskmorph.api;

import java.io.IOException;

/**
 * Root of the API's checked exceptions. Each subclass is one class of
 * failure with the exit code the {@code diskmorph} command ends with for it
 * ({@link #exitCode()}); this class itself stands for any other failure,
 * such as an I/O error of the operating system (exit code 1). The message is
 * one line naming what is wrong and where, fit to show a user as it is; the
 * cause, when there is one, is the internal exception.
 */
public class DiskmorphException extends IOException {
    private static final long serialVersionUID = 1L;

    /** The CLI's exit code for a failure of no more specific class. */
    public static final int EXIT_CODE = 1;

    /** The exit code of this failure. */
    private final int exitCode;

    /**
     * A failure of no more specific class (exit code 1).
     *
     * @param message one line naming what is wrong and where
     * @param cause   the internal failure, or null
     */
    public DiskmorphException(String message, Throwable cause) {
        this(message, cause, EXIT_CODE);
    }

    /**
     * For subclasses: a failure with its own exit code.
     *
     * @param message  one line naming what is wrong and where
     * @param cause    the internal failure, or null
     * @param exitCode the CLI's exit code for this failure
     */
    protected DiskmorphException(String message, Throwable cause, int exitCode) {
        super(message, cause);
        this.exitCode = exitCode;
    }

    /**
     * The exit code the {@code diskmorph} command ends with for this failure
     * (the README's table of exit codes).
     *
     * @return the exit code, never 0
     */
    public final int exitCode() {
        return exitCode;
    }
}
