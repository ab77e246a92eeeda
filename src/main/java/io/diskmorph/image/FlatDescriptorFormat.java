package io.diskmorph.image;

import java.io.IOException;
import java.util.Map;

/**
 * A format that can describe a raw file as it is with a small descriptor
 * file naming it (VMDK monolithicFlat): the in-place conversion from raw
 * then renames nothing but the raw file, which keeps every byte, and writes
 * the descriptor at the image's path (see {@link FlatDataImage} for the way
 * back).
 */
public interface FlatDescriptorFormat {

    /**
     * The descriptor for a raw file of {@code virtualSize} bytes at an image
     * named {@code imageName}, and the name the raw file takes beside it;
     * null when {@code options} ask for another layout than one flat file.
     * Options it does not take are refused with one line.
     */
    FlatDescriptor flatDescriptor(String imageName, long virtualSize, Map<String, String> options)
            throws IOException;

    /**
     * @param dataName   the raw file's new name, in the image's directory
     * @param descriptor the descriptor's bytes
     */
    record FlatDescriptor(String dataName, byte[] descriptor) {
    }
}
