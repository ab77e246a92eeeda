package io.diskmorph.api;

import io.diskmorph.convert.Cancellation.CancelledException;
import io.diskmorph.image.ErrorText;
import io.diskmorph.image.ExitCodes;
import io.diskmorph.image.ImageCompare;
import io.diskmorph.image.ImageException;

import java.io.IOException;
import java.io.UncheckedIOException;

/** Internal failures as the API's exceptions: the same one-line messages and exit codes as the CLI's. */
final class Failures {
    private Failures() {
    }

    /** An operation of the API; its internal failures leave as {@link DiskmorphException}s. */
    interface Operation<T> {
        T run() throws IOException;
    }

    static <T> T translating(Operation<T> op) throws DiskmorphException {
        try {
            return op.run();
        } catch (IOException | UncheckedIOException | IllegalArgumentException e) {
            throw translate(e);
        }
    }

    static DiskmorphException translate(Throwable e) {
        if (e instanceof UncheckedIOException u) {
            e = u.getCause();
        }
        if (e instanceof DiskmorphException d) {
            return d;
        }
        String full = ErrorText.noSpace(e);
        if (full != null) {
            io.diskmorph.image.NotEnoughSpaceException n = e instanceof io.diskmorph.image.NotEnoughSpaceException x
                    ? x : null;
            return new NotEnoughSpaceException(full, e, n != null ? n.needed() : -1, n != null ? n.available() : -1);
        }
        String message = ErrorText.describe(e);
        if (e instanceof IllegalArgumentException) {
            return new InvalidRequestException(message, e);
        }
        if (e instanceof CancelledException c) {
            return new ConversionCancelledException(message, e, c.validAs());
        }
        if (e instanceof ImageCompare.Failure f) {
            return new CompareFailedException(message, e, f.exitCode(), f.image());
        }
        if (!(e instanceof ImageException ie)) {
            return new DiskmorphException(message, e);
        }
        return switch (ie.exitCode()) {
            case ExitCodes.USAGE -> new InvalidRequestException(message, e);
            case ExitCodes.CORRUPT -> new CorruptImageException(message, e);
            case ExitCodes.UNSUPPORTED -> new UnsupportedImageException(message, e);
            case ExitCodes.IN_USE -> new ImageInUseException(message, e);
            case ExitCodes.INTERRUPTED_CONVERSION -> new InterruptedConversionException(message, e);
            case ExitCodes.JOURNAL_MISMATCH -> new JournalMismatchException(message, e);
            default -> new DiskmorphException(message, e);
        };
    }
}
