package io.diskmorph.image;

import java.io.IOException;

/**
 * An image made of a small descriptor file (the file the image was opened
 * by) and one data file beside it holding every guest byte at its guest
 * offset, from offset 0, with nothing else in it: a VMDK descriptor with one
 * FLAT/VMFS extent. Such a pair becomes a raw image in place by renaming the
 * data file over the descriptor (nothing moves; see convert/FlatPairSwitch).
 */
public interface FlatDataImage {

    /**
     * The data file's name as the descriptor writes it, or null when this
     * image is not such a pair (several extents, sparse extents, a single
     * file). Throws an {@link ImageException} with one line when it is a
     * descriptor over one flat file whose data could not stay where it is
     * (an extent starting past offset 0 of its file, a parent image).
     */
    String flatDataFile() throws IOException;
}
