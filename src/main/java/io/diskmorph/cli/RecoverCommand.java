package io.diskmorph.cli;

import io.diskmorph.convert.ConversionFile;
import io.diskmorph.convert.Recovery;
import io.diskmorph.image.Images;
import io.diskmorph.image.OpenOptions;
import io.diskmorph.storage.FileStorage;
import io.diskmorph.storage.FileStorageDir;
import io.diskmorph.storage.LockMode;

import java.nio.file.Path;

final class RecoverCommand implements Cli.Command {
    private Cli.CommandSpec spec;
    Path path;

    @Override
    public Cli.Declaration declare(Cli.CommandSpec io) {
        spec = io;
        return new Cli.Declaration("recover", "Finish or undo an interrupted in-place conversion or "
                + "rollback.", "Before the header switch the original image is restored; after it the "
                + "conversion is completed.")
                .parameters("IMAGE", 1, 1, v -> path = Cli.path(v, "IMAGE"));
    }

    @Override
    public Integer call() throws Exception {
        try (FileStorage image = FileStorage.open(path, false, LockMode.EXCLUSIVE)) {
            ConversionFile file = new ConversionFile(image, FileStorageDir.of(path), path.getFileName().toString(),
                    path, Images.backingOpener(path, OpenOptions.forReading()));
            Recovery.Outcome o = Recovery.recover(file);
            spec.getOut().println(path + ": " + o.text());
        }
        return 0;
    }
}
