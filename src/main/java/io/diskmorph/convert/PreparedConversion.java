package io.diskmorph.convert;

import io.diskmorph.image.CommitRecord;
import io.diskmorph.image.CreateSpec;
import io.diskmorph.image.ImageFormat;
import io.diskmorph.image.LayoutTarget;
import io.diskmorph.storage.FileIdentity;

import java.util.List;

/**
 * Everything the planner decided, which the execution carries out and never
 * changes: the figures the user saw, the target and its options, where every
 * unit goes (the placement), every range that will be written (journaled
 * below the original end), the commit record, the witness ranges and the
 * file's identity. The planner's dry run and the execution's real run feed
 * the same deterministic builder with the same placement, which is what makes
 * the plan the truth about the run.
 *
 * @param writes   every byte range the run writes, the commit record included; read-only from here on
 * @param segments the ranges to journal, split at the file's data/hole boundaries ({@link Journal#segments})
 */
record PreparedConversion(ConversionPlan plan, ImageFormat sourceFormat, LayoutTarget target, CreateSpec spec,
                          LayoutTarget.TargetDefaults defaults, boolean hasBacking, Placement placement,
                          ByteRanges writes, List<long[]> segments, CommitRecord commit, List<long[]> witnesses,
                          FileIdentity identity) {

    /**
     * Where units go: the target cluster size and header zone, the clusters
     * whose data stays, and the allocation policy ({@code dense}: no
     * unreferenced space below the end; the data then ends at
     * {@code dataEndClusters}). Allocators made from it are deterministic.
     */
    record Placement(long clusterSize, long zoneClusters, ClusterBitmap kept, boolean dense, long dataEndClusters) {
        Allocators.Allocator newAllocator() {
            return dense ? new Allocators.Dense(kept, clusterSize, zoneClusters, dataEndClusters)
                    : new Allocators.FirstFit(kept.copy(), clusterSize, zoneClusters);
        }
    }
}
