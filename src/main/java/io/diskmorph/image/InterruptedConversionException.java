package io.diskmorph.image;

import java.nio.file.Path;

/** The image has a journal of an in-place conversion that did not finish; run {@code diskmorph recover}. */
public class InterruptedConversionException extends ImageException {
    public InterruptedConversionException(Path image, Path journal) {
        this(image.toString(), journal.getFileName().toString());
    }

    public InterruptedConversionException(String image, String journalName) {
        super("image " + image + " has an interrupted in-place conversion (journal " + journalName
                + "); run 'diskmorph recover " + image + "' first");
    }

    @Override
    public int exitCode() {
        return ExitCodes.INTERRUPTED_CONVERSION;
    }
}
