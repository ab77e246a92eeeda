package io.diskmorph.cli;

import io.diskmorph.image.OpenOptions;
import io.diskmorph.storage.LockMode;
import io.diskmorph.cli.Cli.Option;

/** Options shared by commands that open one image read-only. */
final class ImageOptions {
    @Option(names = "-f", paramLabel = "FMT", description = "Image format (default: probe the content).")
    String format;

    @Option(names = {"-U", "--force-share"}, description = "Open without taking or honouring image locks.")
    boolean forceShare;

    @Option(names = "--no-backing", description = "Do not open backing files (reads fall through to zeros).")
    boolean noBacking;

    OpenOptions readOnly() {
        return OpenOptions.forReading().withFormat(format).withLock(forceShare ? LockMode.NONE : LockMode.SHARED)
                .withFollowBacking(!noBacking);
    }
}
