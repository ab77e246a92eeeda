package io.diskmorph.cli;

import io.diskmorph.image.DiskImage;
import io.diskmorph.image.ExitCodes;
import io.diskmorph.image.ImageCompare;
import io.diskmorph.image.Images;
import io.diskmorph.image.OpenOptions;
import io.diskmorph.storage.LockMode;
import io.diskmorph.cli.Cli.Command;
import io.diskmorph.cli.Cli.Option;
import io.diskmorph.cli.Cli.Parameters;
import io.diskmorph.cli.Cli.Spec;
import io.diskmorph.cli.Cli.CommandSpec;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.concurrent.Callable;

/** qemu-img compare: exit 0 identical, 1 different, 2 error. */
@Command(name = "compare", description = "Compare the guest content of two images (qemu-img compare).")
final class CompareCommand implements Callable<Integer>, Main.FailureCode {
    @Spec
    CommandSpec spec;

    @Option(names = "-f", paramLabel = "FMT", description = "Format of the first image.")
    String format1;

    @Option(names = "-F", paramLabel = "FMT", description = "Format of the second image.")
    String format2;

    @Option(names = "-s", description = "Strict: allocation and size must match too.")
    boolean strict;

    @Option(names = "-q", description = "Quiet: report only through the exit code.")
    boolean quiet;

    @Option(names = {"-U", "--force-share"}, description = "Open without taking or honouring image locks.")
    boolean forceShare;

    @Parameters(index = "0", paramLabel = "IMAGE1")
    Path first;

    @Parameters(index = "1", paramLabel = "IMAGE2")
    Path second;

    @Override
    public int failureExitCode() {
        return ExitCodes.COMPARE_ERROR;
    }

    @Override
    public Integer call() throws Exception {
        PrintWriter out = spec.commandLine().getOut();
        OpenOptions base = OpenOptions.forReading().withLock(forceShare ? LockMode.NONE : LockMode.SHARED);
        try (DiskImage a = Images.open(first, base.withFormat(format1));
             DiskImage b = Images.open(second, base.withFormat(format2))) {
            ImageCompare.Result r = ImageCompare.compare(a, b, strict);
            if (!quiet) {
                out.println(r.message());
            }
            return r.identical() ? ExitCodes.COMPARE_SAME : ExitCodes.COMPARE_DIFFERENT;
        }
    }
}
