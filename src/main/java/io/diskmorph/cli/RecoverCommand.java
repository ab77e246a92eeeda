package io.diskmorph.cli;

import io.diskmorph.convert.ConversionFile;
import io.diskmorph.convert.Recovery;
import io.diskmorph.image.ImageInUseException;
import io.diskmorph.image.Images;
import io.diskmorph.image.OpenOptions;
import io.diskmorph.storage.LockMode;

import java.nio.file.Path;

final class RecoverCommand implements Cli.Command {
    private Cli.CommandSpec spec;
    Path path;
    boolean acceptMoved;

    @Override
    public Cli.Declaration declare(Cli.CommandSpec io) {
        spec = io;
        return new Cli.Declaration("recover", "Finish or undo an interrupted in-place conversion or "
                + "rollback.", "Before the header switch the original image is restored; after it the "
                + "conversion is completed.")
                .flag("--accept-moved", "The image was moved or copied to another file together with its "
                        + "journal: identify it by its content, not by its inode.", () -> acceptMoved = true)
                .parameters("IMAGE", 1, 1, v -> path = Cli.path(v, "IMAGE"));
    }

    @Override
    public Integer call() throws Exception {
        try (ConversionFile file = openAfterInterruption(path, Images.backingOpener(path, OpenOptions.forReading()))) {
            Recovery.Outcome o = Recovery.recover(file, acceptMoved);
            spec.getOut().println(path + ": " + o.text());
        }
        return 0;
    }

    /**
     * Opens an image for recover or rollback, exclusively. Right after a kill
     * the killed process may still be exiting and holding its locks: a
     * refusal says to retry.
     */
    static ConversionFile openAfterInterruption(Path path, io.diskmorph.image.OpenContext.BackingOpener backing)
            throws java.io.IOException {
        try {
            return ConversionFile.open(path, LockMode.EXCLUSIVE, backing);
        } catch (ImageInUseException e) {
            throw new ImageInUseException(e.getMessage() + "; if a conversion of it was just interrupted, its "
                    + "process may still be exiting: retry in a moment");
        }
    }
}
