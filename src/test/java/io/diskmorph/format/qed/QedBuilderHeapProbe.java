package io.diskmorph.format.qed;

import io.diskmorph.image.CreateSpec;
import io.diskmorph.image.HostSpace;
import io.diskmorph.image.LayoutBuilder;
import io.diskmorph.image.LayoutTarget.TargetDefaults;

import java.nio.ByteBuffer;
import java.util.Map;

/**
 * Run in a child JVM with a tiny heap by {@link QedLayoutBuilderTest}: lays
 * out a 4 TiB disk with data in every L2 table (2048 tables of 256 KiB, half
 * a GiB of metadata) into a host space that only counts, then prints
 * "ok tables bytes". A builder that kept its tables in memory would die of
 * OutOfMemoryError.
 */
public final class QedBuilderHeapProbe {
    private QedBuilderHeapProbe() {
    }

    public static void main(String[] args) throws Exception {
        long size = 4L << 40;
        long[] next = {0};
        long[] written = {0};
        long[] tables = {0};
        HostSpace space = new HostSpace() {
            @Override
            public long allocate(long length, long alignment) {
                long at = (next[0] + alignment - 1) & -alignment;
                next[0] = at + length;
                tables[0]++;
                return at;
            }

            @Override
            public void write(long hostOffset, ByteBuffer data) {
                written[0] += data.remaining();
            }
        };
        LayoutBuilder b = new QedFormat().layoutBuilder(new CreateSpec(size, Map.of(), null, null),
                TargetDefaults.NONE, space);
        next[0] = 1L << 40; // tables after the kept data
        long host = b.headerZone();
        for (long g = 0; g < size; g += 1L << 30) {
            b.addData(g, host);
            host += b.clusterSize();
        }
        b.finish();
        System.out.println("ok " + tables[0] + " " + written[0]);
    }
}
