package io.diskmorph.image;

import io.diskmorph.storage.Storage;

import java.io.IOException;
import java.nio.file.Path;

/**
 * How an image is being opened, and how its backing file and its other files
 * are reached.
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
 * @param extents   opens the files an image is made of besides its own (a VMDK
 *                  descriptor's extent files), by the name the image stores;
 *                  null when the image cannot reach other files (a storage
 *                  without a path, the in-place converter's view)
 */
public record OpenContext(Path path, boolean readOnly, BackingOpener backing, boolean probed, boolean forCheck,
                          ExtentOpener extents) {

    public OpenContext(Path path, boolean readOnly, BackingOpener backing, boolean probed) {
        this(path, readOnly, backing, probed, false, null);
    }

    public OpenContext(Path path, boolean readOnly, BackingOpener backing, boolean probed, boolean forCheck) {
        this(path, readOnly, backing, probed, forCheck, null);
    }

    /** Opens the backing image named in an image header. */
    @FunctionalInterface
    public interface BackingOpener {
        DiskImage open(OpenContext child, String backingName, String backingFormat) throws IOException;
    }

    /**
     * Opens, read-only, a file an image names as a part of itself (a VMDK
     * extent): resolved and checked like a backing file name ({@link
     * Images#extentPath}), locked like the image. The caller owns the storage.
     */
    @FunctionalInterface
    public interface ExtentOpener {
        Storage open(OpenContext image, String name) throws IOException;
    }

    public static OpenContext readOnly(Path path) {
        return new OpenContext(path, true, null, false);
    }

    public OpenContext withReadOnly(boolean ro) {
        return new OpenContext(path, ro, backing, probed, forCheck, extents);
    }
}
