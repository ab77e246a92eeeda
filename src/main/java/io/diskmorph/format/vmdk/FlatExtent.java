package io.diskmorph.format.vmdk;

import io.diskmorph.image.Mapping;
import io.diskmorph.storage.Storage;

/**
 * A FLAT or VMFS extent: guest bytes stored as they are, from
 * {@code fileStart} of the file on (a monolithicFlat or ESXi -flat.vmdk file,
 * a 2 GB piece of a twoGbMaxExtentFlat disk). Bytes past the end of the
 * file read as zeros.
 */
final class FlatExtent extends Extent {
    final long fileStart;

    FlatExtent(long guestStart, long length, String type, Storage file, long fileStart) {
        super(guestStart, length, type, file);
        this.fileStart = fileStart;
    }

    @Override
    Mapping mapping(long offset, long max) {
        return new Mapping.Data(max, fileStart + offset, file);
    }

    @Override
    long statusEnd(long offset) {
        return length;
    }
}
