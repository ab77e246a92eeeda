package io.diskmorph.image;

import java.nio.file.Path;

/** The image has a journal of an in-place conversion that did not finish; run {@code diskmorph recover}. */
public class InterruptedConversionException extends ImageException {
    public InterruptedConversionException(Path image, Path journal) {
        super("image " + image + " has an interrupted in-place conversion (journal " + journal.getFileName()
                + "); run 'diskmorph recover " + image + "' first");
    }

    @Override
    public int exitCode() {
        return ExitCodes.INTERRUPTED_CONVERSION;
    }
}
