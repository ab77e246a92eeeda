package io.diskmorph.image;

import java.io.IOException;
import java.nio.file.Path;

/**
 * How an image is being opened, and how its backing file is reached.
 *
 * @param path      the image file's path as the user named it (QEMU resolves
 *                  relative backing names against its directory), or null for
 *                  storages without a path
 * @param readOnly  open without write access
 * @param backing   opens a backing file by stored name and format; null means
 *                  backing files are not followed (--no-backing, or info
 *                  without --backing-chain)
 * @param probed    the format was guessed from content, not named by the
 *                  user: raw then refuses guest writes that would make the
 *                  file probe as another format (QEMU does the same)
 * @param forCheck  opened for {@code check} (QEMU's BDRV_O_CHECK): the driver opens
 *                  what it can check and repair instead of refusing it
 */
public record OpenContext(Path path, boolean readOnly, BackingOpener backing, boolean probed, boolean forCheck) {

    public OpenContext(Path path, boolean readOnly, BackingOpener backing, boolean probed) {
        this(path, readOnly, backing, probed, false);
    }

    /** Opens the backing image named in an image header. */
    @FunctionalInterface
    public interface BackingOpener {
        DiskImage open(OpenContext child, String backingName, String backingFormat) throws IOException;
    }

    public static OpenContext readOnly(Path path) {
        return new OpenContext(path, true, null, false);
    }

    public OpenContext withReadOnly(boolean ro) {
        return new OpenContext(path, ro, backing, probed, forCheck);
    }
}
