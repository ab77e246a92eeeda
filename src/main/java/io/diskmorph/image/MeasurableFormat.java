package io.diskmorph.image;

import java.io.IOException;

/**
 * Optional capability of an {@link ImageFormat}: how large a new image would
 * be (qemu-img measure). The generic part, counting the guest data a source
 * holds, lives here once; formats add their own metadata.
 */
public interface MeasurableFormat {

    /**
     * Sizes for an image of this format with {@code spec}'s virtual size and
     * -o options (validated like create), holding the guest content of
     * {@code source} (null: an empty image of {@code spec.virtualSize()}).
     */
    Measurement measure(CreateSpec spec, DiskImage source) throws IOException;

    /**
     * @param required       file size needed for the source's data (qemu-img measure "required size")
     * @param fullyAllocated file size with every guest cluster allocated
     * @param bitmaps        space for the source's persistent bitmaps, or -1 when not reported
     */
    record Measurement(long required, long fullyAllocated, long bitmaps) {
    }

    /**
     * Bytes of the aligned {@code unit}-sized blocks that hold guest data in
     * the chain of {@code source} (qemu's rule: ranges reading as zeros do not
     * count, data in any layer does). {@code unit} is a power of two.
     */
    static long dataBytes(DiskImage source, long unit) throws IOException {
        long total = 0;
        long size = source.virtualSize();
        long pos = 0;
        while (pos < size) {
            MapEntry e = ChainMap.entryAt(source, pos, Math.min(size - pos, 1L << 30));
            long end = pos + e.length();
            if (e.data() && !e.zero()) {
                long blockStart = pos & -unit;
                long blockEnd = Math.addExact(end, unit - 1) & -unit;
                total += blockEnd - blockStart;
                end = Math.min(blockEnd, size); // the rest of the block is counted already
            }
            pos = end;
        }
        return total;
    }
}
