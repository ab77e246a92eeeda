package io.diskmorph.image;

import java.io.IOException;

/**
 * Root of diskmorph's checked exceptions. Each subclass is a distinct failure
 * class with its own CLI exit code (see {@link ExitCodes}); the message is a
 * single line naming what is wrong and where, fit to show a user as is.
 */
public class ImageException extends IOException {
    public ImageException(String message) {
        super(message);
    }

    public ImageException(String message, Throwable cause) {
        super(message, cause);
    }

    /** Exit code the CLI uses when this failure ends a command. */
    public int exitCode() {
        return ExitCodes.ERROR;
    }
}
