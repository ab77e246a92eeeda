package io.diskmorph.image;

/** Bad arguments or options: an unknown option, an impossible size, a format that cannot express a request. */
public class InvalidRequestException extends ImageException {
    public InvalidRequestException(String message) {
        super(message);
    }

    @Override
    public int exitCode() {
        return ExitCodes.USAGE;
    }
}
