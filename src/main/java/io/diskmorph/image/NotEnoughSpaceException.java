package io.diskmorph.image;

/** The file system lacks the free space an operation needs; nothing was written. */
public class NotEnoughSpaceException extends ImageException {
    private final long needed;
    private final long available;

    public NotEnoughSpaceException(String what, long needed, long available) {
        super(String.format("not enough free space for %s: need %d bytes, %d available", what, needed, available));
        this.needed = needed;
        this.available = available;
    }

    public long needed() {
        return needed;
    }

    public long available() {
        return available;
    }

    @Override
    public int exitCode() {
        return ExitCodes.NO_SPACE;
    }
}
