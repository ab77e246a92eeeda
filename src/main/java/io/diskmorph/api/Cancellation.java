package io.diskmorph.api;

/**
 * Asks a running in-place conversion or copy to stop, from any thread. The
 * operation looks at it at safe points only: an in-place conversion before
 * its commit point stops and puts the original bytes back (as a crash
 * would be mended), after the commit point it finishes; a copy stops and
 * removes its partial target. The operation then throws
 * {@link ConversionCancelledException}. One object serves one operation.
 */
public final class Cancellation {
    /** The engine's own request, read at its safe points. */
    private final io.diskmorph.convert.Cancellation internal = new io.diskmorph.convert.Cancellation();

    /** A request not yet made. */
    public Cancellation() {
    }

    /**
     * Asks the operation to stop.
     *
     * @param reason what asked ("user", "shutdown"), quoted in the exception
     */
    public void cancel(String reason) {
        internal.request(reason == null ? "cancelled" : reason);
    }

    /**
     * Whether a stop was asked for.
     *
     * @return true after {@link #cancel(String)}
     */
    public boolean isCancelled() {
        return internal.requested();
    }

    io.diskmorph.convert.Cancellation internal() {
        return internal;
    }
}
