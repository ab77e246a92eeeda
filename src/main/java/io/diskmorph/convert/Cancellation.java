package io.diskmorph.convert;

import io.diskmorph.image.ImageException;

/**
 * A request to stop an in-place operation early (a signal, an embedding
 * application). The operation looks at it at safe points only: before the
 * commit point it stops and puts the original bytes back, as a crash would
 * be mended; after the commit point it finishes, since the target is then
 * the image. {@link #NONE} is never requested.
 */
public final class Cancellation {
    public static final Cancellation NONE = new Cancellation();

    private volatile String reason;

    /** Asks the operation to stop; {@code why} names the cause ("SIGINT"). */
    public void request(String why) {
        if (this == NONE) {
            throw new IllegalStateException("Cancellation.NONE cannot be requested");
        }
        reason = why;
    }

    public boolean requested() {
        return reason != null;
    }

    /** What requested the stop, or null. */
    public String reason() {
        return reason;
    }

    /** Throws {@link CancelledException} when a stop was requested. */
    void check() throws CancelledException {
        String r = reason;
        if (r != null) {
            throw new CancelledException(r);
        }
    }

    /**
     * The operation stopped on request before its commit point; the image is
     * as it was before, or (a roll-forward, {@link #validAs}) a valid image
     * with the same content.
     */
    public static final class CancelledException extends ImageException {
        private final String reason;
        private final boolean untouched;
        private final String validAs;

        CancelledException(String reason) {
            this(reason, false, null);
        }

        /** @param untouched nothing of the image was changed (a rename switch stopped before its rename) */
        CancelledException(String reason, boolean untouched) {
            this(reason, untouched, null);
        }

        private CancelledException(String reason, boolean untouched, String validAs) {
            super("interrupted (" + reason + ")");
            this.reason = reason;
            this.untouched = untouched;
            this.validAs = validAs;
        }

        /** The same stop, the image left a valid {@code format} image with the same content (not the original bytes). */
        CancelledException leftAs(String format) {
            return new CancelledException(reason, false, format);
        }

        /**
         * The format of the valid image a roll-forward left (its data partly
         * moved, the content the same; running the conversion again
         * continues), or null when the original bytes are back.
         */
        public String validAs() {
            return validAs;
        }

        public String reason() {
            return reason;
        }

        /** True when every file of the image is as it was (not merely the same content). */
        public boolean untouched() {
            return untouched;
        }
    }
}
