package io.diskmorph.image;

import java.io.IOException;
import java.util.List;
import java.util.Map;

/**
 * A format that describes a raw file as it is by a trailer after its data
 * (a fixed VHD: the disk, then a 512-byte footer). An in-place conversion
 * from raw to such a format moves nothing: it appends the trailer
 * ({@code convert.TrailerSwitch}); the way back, dropping the trailer, needs
 * no capability (an image whose mapping is the identity over the whole
 * disk is raw data followed by its metadata).
 */
public interface TrailerFormat {

    /**
     * The trailer for a raw file of {@code rawLength} bytes under the -o
     * {@code options}: where it goes ({@code dataLength}, the raw length or
     * more when an option asks to grow the disk) and its bytes. Throws
     * {@link InvalidRequestException} or {@link UnsupportedFeatureException}
     * (one line) when the options or the size do not allow it.
     */
    Trailer trailer(long rawLength, Map<String, String> options) throws IOException;

    /** The disk's length once the trailer is appended, the trailer's bytes, and lines for the plan. */
    record Trailer(long dataLength, byte[] bytes, List<String> notes) {
        public Trailer {
            bytes = bytes.clone();
            notes = List.copyOf(notes);
        }

        @Override
        public byte[] bytes() {
            return bytes.clone();
        }
    }
}
