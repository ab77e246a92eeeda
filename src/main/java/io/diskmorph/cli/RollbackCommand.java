package io.diskmorph.cli;

import io.diskmorph.convert.ConversionFile;
import io.diskmorph.convert.Recovery;
import io.diskmorph.storage.FileStorage;
import io.diskmorph.storage.FileStorageDir;
import io.diskmorph.storage.LockMode;
import io.diskmorph.cli.Cli.Command;
import io.diskmorph.cli.Cli.Parameters;
import io.diskmorph.cli.Cli.Spec;
import io.diskmorph.cli.Cli.CommandSpec;

import java.nio.file.Path;
import java.util.concurrent.Callable;

@Command(name = "rollback", description = {"Restore the original format of an image converted in place with "
        + "--keep-rollback (byte-identical), as long as it was not written since."})
final class RollbackCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Parameters(index = "0", paramLabel = "IMAGE")
    Path path;

    @Override
    public Integer call() throws Exception {
        try (FileStorage image = FileStorage.open(path, false, LockMode.EXCLUSIVE)) {
            ConversionFile file = new ConversionFile(image, FileStorageDir.of(path), path.getFileName().toString(),
                    path, null);
            Recovery.rollback(file);
            spec.commandLine().getOut().println(path + ": rolled back to the original format");
        }
        return 0;
    }
}
