package io.diskmorph.convert;

import io.diskmorph.image.DiskImage;
import io.diskmorph.image.LayoutBuilder;

import java.io.IOException;

/**
 * Feeds a target's layout builder with the source's units in guest order:
 * kept units at their host offset, moving units (and, under the dense
 * policy, kept units above the data's end) at a cluster from the allocator.
 * The planner's dry run and the execution's real run both feed through here,
 * with the same placement, so the builder sees the same input twice; only
 * the {@link Sink} differs (count and record, or copy the data).
 */
final class LayoutFeed {
    /** What happens to each unit beyond telling the builder. */
    interface Sink {
        /** A unit's data goes to {@code dest} (moved for {@code why}). */
        void moved(UnitWalker unit, long dest, MoveReason why) throws IOException;

        default void kept(UnitWalker unit) {
        }

        default void zero(UnitWalker unit) {
        }

        /** After the last unit. */
        default void done(UnitWalker walker) {
        }
    }

    private LayoutFeed() {
    }

    static void feed(DiskImage source, LayoutBuilder b, PreparedConversion.Placement placement, boolean hasBacking,
                     Allocators.Allocator alloc, Cancellation cancel, PhaseClock clock, String phase, Sink sink)
            throws IOException {
        UnitWalker w = new UnitWalker(source, rules(b), hasBacking);
        long relocateFrom = placement.dense() ? placement.dataEndClusters() : Long.MAX_VALUE;
        long cluster = placement.clusterSize();
        long done = 0;
        while (w.next()) {
            cancel.check();
            switch (w.kind) {
                case SKIP -> {
                }
                case ZERO -> {
                    b.addZero(w.guestOffset);
                    sink.zero(w);
                }
                case KEEP -> {
                    if (w.host / cluster >= relocateFrom) {
                        long dest = alloc.allocateUnit();
                        sink.moved(w, dest, MoveReason.COMPACTED);
                        b.addData(w.guestOffset, dest);
                    } else {
                        sink.kept(w);
                        b.addData(w.guestOffset, w.host);
                    }
                }
                case MOVE -> {
                    long dest = alloc.allocateUnit();
                    sink.moved(w, dest, w.reason);
                    b.addData(w.guestOffset, dest);
                }
            }
            if (++done % 4096 == 0) {
                clock.update(phase, w.guestOffset, source.virtualSize());
            }
        }
        clock.update(phase, source.virtualSize(), source.virtualSize());
        sink.done(w);
    }

    /** What the target can hold, as the unit walker asks it. */
    static UnitWalker.Rules rules(LayoutBuilder b) {
        return new UnitWalker.Rules() {
            @Override
            public long clusterSize() {
                return b.clusterSize();
            }

            @Override
            public long headerZone() {
                return b.headerZone();
            }

            @Override
            public boolean canKeepDataAt(long hostOffset) {
                return b.canKeepDataAt(hostOffset);
            }

            @Override
            public boolean supportsZeroClusters() {
                return b.supportsZeroClusters();
            }
        };
    }
}
