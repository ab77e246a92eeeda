package io.diskmorph.api;

/**
 * One line of {@code map}: a range of guest bytes and where it is answered,
 * with qemu-img map's fields and meanings (consecutive ranges of the same
 * kind are merged as qemu-img merges them).
 *
 * @param start      guest offset of the range in bytes
 * @param length     bytes in the range
 * @param depth      the layer of the backing chain that answers (0 is the image itself)
 * @param present    allocated in some layer (false: falls through the whole chain)
 * @param zero       reads as zeros
 * @param data       has data (perhaps compressed)
 * @param hostOffset the byte offset in {@code file} where the data is, or -1 when there is none
 *                   (unallocated, compressed, or zero without a host location)
 * @param file       the name of the file holding the data, or null without a host offset
 * @param compressed the range is a compressed cluster
 */
public record Extent(long start, long length, int depth, boolean present, boolean zero, boolean data,
                     long hostOffset, String file, boolean compressed) {

    static Extent of(io.diskmorph.image.MapEntry e) {
        return new Extent(e.start(), e.length(), e.depth(), e.present(), e.zero(), e.data(), e.offset(), e.file(),
                e.compressed());
    }
}
