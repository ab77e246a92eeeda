package io.diskmorph.image;

/** The image uses a feature, or the request asks for one, that diskmorph does not handle. */
public class UnsupportedFeatureException extends ImageException {
    public UnsupportedFeatureException(String message) {
        super(message);
    }

    @Override
    public int exitCode() {
        return ExitCodes.UNSUPPORTED;
    }
}
