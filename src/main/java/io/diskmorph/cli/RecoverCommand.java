package io.diskmorph.cli;

import io.diskmorph.convert.ConversionFile;
import io.diskmorph.convert.Recovery;
import io.diskmorph.image.Images;
import io.diskmorph.image.OpenOptions;
import io.diskmorph.storage.FileStorage;
import io.diskmorph.storage.FileStorageDir;
import io.diskmorph.storage.LockMode;
import io.diskmorph.cli.Cli.Command;
import io.diskmorph.cli.Cli.Parameters;
import io.diskmorph.cli.Cli.Spec;
import io.diskmorph.cli.Cli.CommandSpec;

import java.nio.file.Path;
import java.util.concurrent.Callable;

@Command(name = "recover", description = {"Finish or undo an interrupted in-place conversion or rollback.",
        "Before the header switch the original image is restored; after it the conversion is completed."})
final class RecoverCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Parameters(index = "0", paramLabel = "IMAGE")
    Path path;

    @Override
    public Integer call() throws Exception {
        try (FileStorage image = FileStorage.open(path, false, LockMode.EXCLUSIVE)) {
            ConversionFile file = new ConversionFile(image, FileStorageDir.of(path), path.getFileName().toString(),
                    path, Images.backingOpener(path, OpenOptions.forReading()));
            Recovery.Outcome o = Recovery.recover(file);
            spec.commandLine().getOut().println(path + ": " + o.text());
        }
        return 0;
    }
}
