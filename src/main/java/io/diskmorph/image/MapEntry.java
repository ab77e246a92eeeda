package io.diskmorph.image;

/**
 * One line of {@code map}: a guest range and where in the chain it is
 * answered, with qemu-img map's fields and meanings.
 *
 * @param depth    layer that answers (0 = top)
 * @param present  allocated in some layer (false: falls through to the end of the chain)
 * @param zero     reads as zeros
 * @param data     has data (possibly compressed)
 * @param offset   host offset in {@code file}, or -1 when none (unallocated, compressed, plain zero)
 * @param file     name of the file that holds the data, null without an offset
 * @param compressed the range is a compressed cluster (qemu 7.2 does not print this field)
 */
public record MapEntry(long start, long length, int depth, boolean present, boolean zero, boolean data,
                       long offset, String file, boolean compressed) {

    public boolean hasOffset() {
        return offset >= 0;
    }

    /** qemu-img map's merge rule: same kind, same file, contiguous host offsets. */
    public boolean mergeableWith(MapEntry next) {
        if (length == 0 || zero != next.zero || data != next.data || depth != next.depth || present != next.present
                || (file == null) != (next.file == null) || hasOffset() != next.hasOffset()
                || compressed != next.compressed) {
            return false;
        }
        if (file != null && !file.equals(next.file)) {
            return false;
        }
        return !hasOffset() || offset + length == next.offset;
    }

    public MapEntry merge(MapEntry next) {
        return new MapEntry(start, length + next.length, depth, present, zero, data, offset, file, compressed);
    }
}
