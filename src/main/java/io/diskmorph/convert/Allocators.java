package io.diskmorph.convert;

import java.io.IOException;

/**
 * Deterministic host-space policies for an in-place conversion. Both hand
 * out target clusters that hold no kept guest data and lie outside the
 * target's header zone; the same inputs always give the same answers, so
 * the dry run and the real run place everything identically.
 */
final class Allocators {
    private Allocators() {
    }

    /** Where data units and builder metadata go. */
    interface Allocator {
        /** One target cluster for a guest data unit that moves. */
        long allocateUnit() throws IOException;

        /** Space for builder metadata. */
        long allocate(long length, long alignment) throws IOException;

        /** End of the highest byte handed out so far (0 when none). */
        long highWater();
    }

    /**
     * Lowest free cluster first (free: not kept, not in the header zone, not
     * yet handed out), then the region past the original end. For targets
     * where unreferenced space is merely free (qcow2).
     */
    static final class FirstFit implements Allocator {
        private final ClusterBitmap used;
        private final long cluster;
        private final long zoneClusters;
        private long lowestFree;
        private long highWater;

        FirstFit(ClusterBitmap kept, long cluster, long zoneClusters) {
            this.used = kept;
            this.cluster = cluster;
            this.zoneClusters = zoneClusters;
            this.lowestFree = zoneClusters;
        }

        @Override
        public long allocateUnit() throws IOException {
            return allocate(cluster, cluster);
        }

        @Override
        public long allocate(long length, long alignment) {
            long n = Math.ceilDiv(length, cluster);
            long alignClusters = Math.max(1, alignment / cluster);
            long c = used.nextClear(lowestFree);
            lowestFree = c;
            while (true) {
                c = Math.ceilDiv(used.nextClear(c), alignClusters) * alignClusters;
                long busy = used.nextSet(c);
                if (busy < 0 || busy >= c + n) {
                    break;
                }
                c = busy + 1;
            }
            for (long i = 0; i < n; i++) {
                used.set(c + i);
            }
            long end = (c + n) * cluster;
            highWater = Math.max(highWater, end);
            return c * cluster;
        }

        @Override
        public long highWater() {
            return highWater;
        }

        long zoneClusters() {
            return zoneClusters;
        }
    }

    /**
     * Leaves no unreferenced cluster below the end of the file (QED, whose
     * checker counts those as leaks): moving units fill the free clusters
     * below {@code dataEnd} (the size the kept and moved data need together),
     * kept units at or above {@code dataEnd} are relocated into them too, and
     * builder metadata is packed from {@code dataEnd} upwards.
     */
    static final class Dense implements Allocator {
        private final ClusterBitmap kept;
        private final long cluster;
        private final long dataEnd;
        private long nextSlot;
        private long bump;
        private long highWater;

        Dense(ClusterBitmap kept, long cluster, long zoneClusters, long dataEndClusters) {
            this.kept = kept;
            this.cluster = cluster;
            this.dataEnd = dataEndClusters;
            this.nextSlot = zoneClusters;
            this.bump = dataEndClusters * cluster;
        }

        @Override
        public long allocateUnit() throws IOException {
            long c = kept.nextClear(nextSlot);
            if (c >= dataEnd) {
                throw new IllegalStateException("dense layout ran out of free clusters below " + dataEnd);
            }
            nextSlot = c + 1;
            highWater = Math.max(highWater, (c + 1) * cluster);
            return c * cluster;
        }

        @Override
        public long allocate(long length, long alignment) {
            long at = Math.ceilDiv(bump, Math.max(alignment, 1)) * Math.max(alignment, 1);
            bump = at + Math.ceilDiv(length, cluster) * cluster;
            highWater = Math.max(highWater, bump);
            return at;
        }

        @Override
        public long highWater() {
            return highWater;
        }

        /** Kept units whose cluster index is at least this are relocated. */
        long relocateFrom() {
            return dataEnd;
        }
    }
}
