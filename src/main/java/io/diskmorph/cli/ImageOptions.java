package io.diskmorph.cli;

import io.diskmorph.image.OpenOptions;
import io.diskmorph.storage.LockMode;

/** Options shared by commands that open one image read-only. */
final class ImageOptions {
    String format;
    boolean forceShare;
    boolean noBacking;

    /** Adds these options to a command's declaration. */
    void declare(Cli.Declaration d) {
        d.option("-f", "FMT", "Image format (default: probe the content).", v -> format = v)
                .flag("-U|--force-share", "Open without taking or honouring image locks.", () -> forceShare = true)
                .flag("--no-backing", "Do not open backing files (reads fall through to zeros).",
                        () -> noBacking = true);
    }

    OpenOptions readOnly() {
        return OpenOptions.forReading().withFormat(format).withLock(forceShare ? LockMode.NONE : LockMode.SHARED)
                .withFollowBacking(!noBacking);
    }
}
