package io.diskmorph.api;

/**
 * A finished copy conversion.
 *
 * @param target          the new image's details
 * @param sourceFormat    the source's format (as probed, or as named)
 * @param dataBytes       guest bytes written as data
 * @param compressedBytes of those, bytes written in compressed clusters (with {@link CopyRequest#compress()})
 * @param zeroBytes       guest bytes left as zeros (holes, zero clusters) rather than written
 */
public record CopyResult(ImageDetails target, String sourceFormat, long dataBytes, long compressedBytes,
                         long zeroBytes) {
}
