package io.diskmorph.image;

/** Another process (QEMU, qemu-nbd, qemu-io, diskmorph) holds a conflicting image lock. */
public class ImageInUseException extends ImageException {
    public ImageInUseException(String message) {
        super(message);
    }

    @Override
    public int exitCode() {
        return ExitCodes.IN_USE;
    }
}
