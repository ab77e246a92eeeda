package io.diskmorph.convert;

/**
 * What the dry run of an in-place conversion decides about each range of
 * the file, told as it decides it: the picture of the file after the
 * conversion ({@code convert --in-place --dry-run --layout}). Called on the
 * planner's thread; ranges of one unit at a time.
 */
public interface PlanObserver {
    PlanObserver NONE = new PlanObserver() {
        @Override
        public void data(long guestOffset, long fromHost, long toHost, long length) {
        }

        @Override
        public void metadata(long hostOffset, long length) {
        }
    };

    /** Guest data of {@code length} bytes at {@code guestOffset}: at {@code fromHost} now, at {@code toHost} after. */
    void data(long guestOffset, long fromHost, long toHost, long length);

    /** The target's metadata (tables, header) written at {@code hostOffset}. */
    void metadata(long hostOffset, long length);
}
