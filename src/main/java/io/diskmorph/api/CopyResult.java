package io.diskmorph.api;

/**
 * A finished copy conversion.
 *
 * @param target          the new image's details
 * @param sourceFormat    the source's format (as probed, or as named)
 * @param dataBytes       guest bytes written as data
 * @param compressedBytes of those, bytes written in compressed clusters (with {@link CopyRequest#compress()})
 * @param zeroBytes       guest bytes written as zeros (zero clusters, or zeros over a backing file); runs of
 *                        zeros a new target reads as zeros without a write (holes) are not counted
 */
public record CopyResult(ImageDetails target, String sourceFormat, long dataBytes, long compressedBytes,
                         long zeroBytes) {
}
