package io.diskmorph.cli;

import io.diskmorph.convert.ConversionFile;
import io.diskmorph.convert.Recovery;
import io.diskmorph.storage.FileStorage;
import io.diskmorph.storage.FileStorageDir;
import io.diskmorph.storage.LockMode;

import java.nio.file.Path;

final class RollbackCommand implements Cli.Command {
    private Cli.CommandSpec spec;
    Path path;

    @Override
    public Cli.Declaration declare(Cli.CommandSpec io) {
        spec = io;
        return new Cli.Declaration("rollback", "Restore the original format of an image converted in place with "
                + "--keep-rollback (byte-identical), as long as it was not written since.")
                .parameters("IMAGE", 1, 1, v -> path = Cli.path(v, "IMAGE"));
    }

    @Override
    public Integer call() throws Exception {
        try (FileStorage image = FileStorage.open(path, false, LockMode.EXCLUSIVE)) {
            ConversionFile file = new ConversionFile(image, FileStorageDir.of(path), path.getFileName().toString(),
                    path, null);
            Recovery.rollback(file);
            spec.getOut().println(path + ": rolled back to the original format");
        }
        return 0;
    }
}
