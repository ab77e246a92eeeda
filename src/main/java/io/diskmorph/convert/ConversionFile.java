package io.diskmorph.convert;

import io.diskmorph.image.Images;
import io.diskmorph.image.OpenContext;
import io.diskmorph.storage.FileStorage;
import io.diskmorph.storage.FileStorageDir;
import io.diskmorph.storage.LockMode;
import io.diskmorph.storage.Storage;
import io.diskmorph.storage.StorageDir;

import java.io.IOException;
import java.nio.file.Path;

/**
 * The image an in-place conversion (or recover, rollback) works on: its
 * storage, opened read-write and locked exclusively for the whole operation
 * (shared for a dry run), the directory holding its journal, and how to
 * reach its backing files. Closing it closes the image.
 *
 * @param name    the file's name in {@code dir}; its journal is {@code name.dmjournal} there
 * @param path    the image path as the user named it (backing names resolve against it), or null
 * @param backing opener for backing files, or null when there are none to follow
 * @param extents opener for the files an image names as parts of itself (a VMDK descriptor's
 *                extents), or null for a file without a path: the planner opens them only to
 *                refuse such an image by what it is, since the conversion rewrites one file
 */
public record ConversionFile(Storage image, StorageDir dir, String name, Path path,
                             OpenContext.BackingOpener backing, OpenContext.ExtentOpener extents)
        implements AutoCloseable {

    /** A file whose image cannot name other files (tests, fuzzing: storages without a path). */
    public ConversionFile(Storage image, StorageDir dir, String name, Path path, OpenContext.BackingOpener backing) {
        this(image, dir, name, path, backing, null);
    }

    /**
     * Opens {@code path} for an in-place operation. The journal lives beside
     * the file's real path (symbolic links resolved, as {@link
     * Images#journalPath} finds it), so every name that leads to the file
     * through links finds it too.
     */
    public static ConversionFile open(Path path, LockMode lock, OpenContext.BackingOpener backing)
            throws IOException {
        Path real = Images.realPath(path);
        FileStorage image = FileStorage.open(path, lock != LockMode.EXCLUSIVE, lock);
        return new ConversionFile(image, FileStorageDir.of(real), real.getFileName().toString(), path, backing,
                Images.extentOpener());
    }

    /**
     * Opens an image for recover or rollback, exclusively. Right after a kill
     * the killed process may still be exiting and holding its locks: a
     * refusal says to retry.
     */
    public static ConversionFile openAfterInterruption(Path path, OpenContext.BackingOpener backing)
            throws IOException {
        try {
            return open(path, LockMode.EXCLUSIVE, backing);
        } catch (io.diskmorph.image.ImageInUseException e) {
            throw new io.diskmorph.image.ImageInUseException(e.getMessage() + "; if a conversion of it was just "
                    + "interrupted, its process may still be exiting: retry in a moment");
        }
    }

    String journalName() {
        return name + Images.JOURNAL_SUFFIX;
    }

    String rollbackName() {
        return name + Images.ROLLBACK_SUFFIX;
    }

    /** The image as the user named it, for messages. */
    public String displayName() {
        return path != null ? path.toString() : name;
    }

    @Override
    public void close() throws IOException {
        image.close();
    }
}
