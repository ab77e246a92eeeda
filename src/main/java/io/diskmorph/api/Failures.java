package io.diskmorph.api;

import io.diskmorph.convert.Cancellation.CancelledException;
import io.diskmorph.image.ErrorText;
import io.diskmorph.image.ExitCodes;
import io.diskmorph.image.ImageException;

import java.io.IOException;
import java.io.UncheckedIOException;

/**
 * Internal failures as the API's exceptions (the CLI's one-line messages and
 * exit codes), and the two guards every writing operation runs under: its
 * own thread, so that an interrupt of the caller cannot close the image's
 * channels half way, and a listener that cannot break the operation.
 */
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
        } catch (IOException | RuntimeException e) {
            throw translate(e);
        }
    }

    /**
     * Runs {@code op} on a thread of its own and waits for it. An interrupt
     * of the caller does not reach the operation (a FileChannel closes when
     * the thread using it is interrupted, which would leave an in-place
     * conversion's journal for {@code recover}): it requests {@code cancel}
     * instead, the wait goes on, and the caller's interrupt status is set
     * again before returning.
     */
    static <T> T uninterruptibly(Operation<T> op, io.diskmorph.convert.Cancellation cancel)
            throws DiskmorphException {
        Object[] result = new Object[1];
        Throwable[] failure = new Throwable[1];
        Thread worker = Thread.ofPlatform().name("diskmorph-api").unstarted(() -> {
            try {
                result[0] = op.run();
            } catch (Throwable e) {
                failure[0] = e;
            }
        });
        worker.start();
        boolean interrupted = false;
        while (true) {
            try {
                worker.join(); // join's happens-before makes the worker's result visible here
                break;
            } catch (InterruptedException e) {
                interrupted = true;
                if (cancel != null && !cancel.requested()) {
                    cancel.request("interrupted");
                }
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
        if (failure[0] instanceof Error err) {
            throw err;
        }
        if (failure[0] != null) {
            throw translate(failure[0]);
        }
        @SuppressWarnings("unchecked")
        T t = (T) result[0];
        return t;
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
        String message = ErrorText.describe(e); // "internal error: ..." for a RuntimeException, as the CLI says
        if (e instanceof CancelledException c) {
            return new ConversionCancelledException(message, e, c.validAs());
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

    /**
     * A caller's listener that cannot break the operation it watches: the
     * first exception it throws is kept, the listener is called no more,
     * and the operation's cancellation (if it has one) is requested, so it
     * stops at its next safe point as if the caller had cancelled it.
     */
    static final class GuardedListener implements io.diskmorph.convert.InPlaceConverter.Progress {
        private final ProgressListener listener;
        private final io.diskmorph.convert.Cancellation cancel;
        private volatile RuntimeException failure;

        GuardedListener(ProgressListener listener, io.diskmorph.convert.Cancellation cancel) {
            this.listener = listener == null ? ProgressListener.NONE : listener;
            this.cancel = cancel;
        }

        @Override
        public void update(String phase, long done, long total) {
            if (failure != null) {
                return;
            }
            try {
                listener.progress(phase, done, total);
            } catch (RuntimeException e) {
                failure = e;
                if (cancel != null && !cancel.requested()) {
                    cancel.request("the progress listener failed");
                }
            }
        }

        /** What the listener threw, or null. */
        RuntimeException failure() {
            return failure;
        }
    }
}
