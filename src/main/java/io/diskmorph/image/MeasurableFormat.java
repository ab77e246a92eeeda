package io.diskmorph.image;

import java.io.IOException;

/**
 * Optional capability of an {@link ImageFormat}: how large a new image would
 * be (qemu-img measure). The generic part, counting the guest data a source
 * holds, lives here once; formats add their own metadata.
 */
public interface MeasurableFormat {
    /**
     * Where {@link #dataBytes} reports the guest bytes it has walked (phase
     * "measure", of the virtual size) while {@code copy.Measure} measures an
     * image with progress on: bound around the driver's {@link #measure}, so
     * the drivers' measure keeps its signature and none of them passes it on.
     */
    ScopedValue<PhaseProgress> WALK_PROGRESS = ScopedValue.newInstance();

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
        return dataBytes(source, new long[] {unit})[0];
    }

    /**
     * {@link #dataBytes(DiskImage, long)} for several units in one walk over
     * the chain (a table's coverage and a cluster): element i for {@code
     * units[i]}.
     */
    static long[] dataBytes(DiskImage source, long... units) throws IOException {
        long[] total = new long[units.length];
        // per unit: the end of the last block counted, so a block a run shares with the one before counts once
        long[] counted = new long[units.length];
        long size = source.virtualSize();
        PhaseProgress progress = WALK_PROGRESS.orElse(PhaseProgress.NONE);
        progress.update("measure", 0, size);
        long pos = 0;
        while (pos < size) {
            MapEntry e = ChainMap.entryAt(source, pos, Math.min(size - pos, 1L << 30));
            long end = pos + e.length();
            if (e.data() && !e.zero()) {
                long skipTo = Long.MAX_VALUE;
                for (int i = 0; i < units.length; i++) {
                    long blockStart = Math.max(pos & -units[i], counted[i]);
                    long blockEnd = Math.addExact(end, units[i] - 1) & -units[i];
                    if (blockEnd > blockStart) {
                        total[i] += blockEnd - blockStart;
                        counted[i] = blockEnd;
                    }
                    skipTo = Math.min(skipTo, counted[i]);
                }
                end = Math.min(skipTo, size); // up to there every unit's block is counted already
            }
            pos = end;
            progress.update("measure", pos, size);
        }
        return total;
    }
}
