package io.diskmorph.convert;

import io.diskmorph.image.Images;
import io.diskmorph.image.OpenContext;
import io.diskmorph.storage.Storage;
import io.diskmorph.storage.StorageDir;

import java.nio.file.Path;

/**
 * The image an in-place conversion (or recover, rollback) works on: its
 * storage, opened read-write and locked exclusively by the caller for the
 * whole operation, the directory holding its journal, and how to reach its
 * backing files.
 *
 * @param path    the image path as the user named it (backing names resolve against it), or null
 * @param backing opener for backing files, or null when there are none to follow
 */
public record ConversionFile(Storage image, StorageDir dir, String name, Path path,
                             OpenContext.BackingOpener backing) {

    String journalName() {
        return name + Images.JOURNAL_SUFFIX;
    }

    String rollbackName() {
        return name + Images.ROLLBACK_SUFFIX;
    }
}
