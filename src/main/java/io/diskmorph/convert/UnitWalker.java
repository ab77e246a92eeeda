package io.diskmorph.convert;

import io.diskmorph.image.DiskImage;
import io.diskmorph.image.Mapping;

import java.io.IOException;

/**
 * Walks a source image's top layer in target-cluster units, in guest order,
 * and says what each unit becomes in the target: unallocated, a zero
 * cluster, data kept at its host offset, or data that must move (and why).
 * Deterministic: two walks over the same source give the same units, which is
 * what lets the converter plan in a dry run and replay for real.
 */
final class UnitWalker {

    enum Kind { SKIP, ZERO, KEEP, MOVE }

    /** What the target can hold, and how raw sources are treated. */
    interface Rules {
        long clusterSize();

        long headerZone();

        boolean canKeepDataAt(long hostOffset);

        boolean supportsZeroClusters();

        /** Whether a guest cluster's data is kept at this host offset (then no other cluster may map there). */
        default boolean hostKeepsData(long hostOffset) {
            return false;
        }
    }

    private final DiskImage source;
    private final Rules rules;
    private final long cluster;
    private final long virtualSize;
    private final boolean hasBacking;
    private final boolean rawSource;
    /**
     * Holes below this offset are kept as (sparse) data so no unreferenced
     * space remains (dense targets): raw holes, and for other sources without
     * a backing file a guest cluster that reads zeros whose own offset is a
     * hole of the file, so it maps onto itself.
     */
    private final long identityHolesBelow;
    private final long sourceUnit;

    // the last hole query: the file has no data in [holeFrom, nextDataAfterHole)
    private long holeFrom = -1;
    private long nextDataAfterHole = -1;

    // cursor over the source mapping
    private long extentStart;
    private long extentEnd;
    private Mapping extent;

    // current unit
    long guestOffset = -1;
    long length;
    Kind kind;
    long host = -1;
    MoveReason reason;

    UnitWalker(DiskImage source, Rules rules, boolean hasBacking, long identityHolesBelow) {
        this.source = source;
        this.rules = rules;
        this.cluster = rules.clusterSize();
        this.virtualSize = source.virtualSize();
        this.hasBacking = hasBacking;
        this.rawSource = source.format().name().equals("raw");
        this.identityHolesBelow = identityHolesBelow;
        this.sourceUnit = source.clusterSize();
    }

    /** Advances to the next unit; false at the end of the disk. */
    boolean next() throws IOException {
        long g = guestOffset < 0 ? 0 : guestOffset + cluster;
        if (g >= virtualSize) {
            return false;
        }
        // Fast path over long unallocated runs (a sparse TiB disk): whole units inside one
        // unallocated extent are skipped together, as the caller does nothing for them.
        boolean skippable = rawSource ? extent instanceof Mapping.Zero && g >= identityHolesBelow
                : extent instanceof Mapping.Unallocated && g >= identityHolesBelow;
        if (kind == Kind.SKIP && skippable && g >= extentStart && g + cluster <= extentEnd) {
            long whole = (extentEnd - g) / cluster;
            g += (whole - 1) * cluster;
        }
        guestOffset = g;
        length = Math.min(cluster, virtualSize - g);
        host = -1;
        reason = null;
        classify();
        return true;
    }

    private Mapping extentAt(long pos) throws IOException {
        if (extent == null || pos < extentStart || pos >= extentEnd) {
            extent = source.mapping(pos, virtualSize - pos);
            extentStart = pos;
            extentEnd = pos + extent.length();
        }
        return extent;
    }

    private void classify() throws IOException {
        long end = guestOffset + length;
        boolean anyData = false;
        boolean anyZero = false;
        boolean anyUnallocated = false;
        boolean anyCompressed = false;
        boolean contiguous = true;
        long firstHost = -1;
        long nextHost = -1;
        for (long pos = guestOffset; pos < end; ) {
            Mapping m = extentAt(pos);
            long n = Math.min(end, extentEnd) - pos;
            switch (m) {
                case Mapping.Data d -> {
                    long h = d.hostOffset() + (pos - extentStart);
                    if (firstHost < 0 && pos == guestOffset) {
                        firstHost = h;
                    } else if (h != nextHost) {
                        contiguous = false;
                    }
                    nextHost = h + n;
                    anyData = true;
                }
                case Mapping.Zero z -> {
                    anyZero = true;
                    if (rawSource) {
                        // a raw hole reads zeros at the same host offset: as good as data for identity mapping
                        long h = pos;
                        if (firstHost < 0 && pos == guestOffset) {
                            firstHost = h;
                        }
                        nextHost = h + n;
                    } else {
                        contiguous = false;
                    }
                }
                case Mapping.Unallocated u -> {
                    anyUnallocated = true;
                    contiguous = false;
                }
                case Mapping.Compressed c -> {
                    anyCompressed = true;
                    contiguous = false;
                }
            }
            pos += n;
        }
        if (rawSource) {
            classifyRaw(anyData);
            return;
        }
        if (anyCompressed) {
            move(MoveReason.COMPRESSED);
        } else if (!anyData && identityHole()) {
            kind = Kind.KEEP;
            host = guestOffset;
        } else if (!anyData) {
            if (!anyZero) {
                kind = Kind.SKIP;
            } else if (!anyUnallocated || !hasBacking) {
                // reads zeros whole: a zero cluster, or nothing at all where zeros are the default
                kind = rules.supportsZeroClusters() ? Kind.ZERO : hasBacking ? Kind.MOVE : Kind.SKIP;
                if (kind == Kind.MOVE) {
                    reason = MoveReason.MATERIALIZED;
                }
            } else {
                move(MoveReason.MATERIALIZED);
            }
        } else if (anyZero || anyUnallocated) {
            move(MoveReason.MATERIALIZED);
        } else if (!contiguous) {
            move(MoveReason.FRAGMENTED);
        } else {
            keepOrMove(firstHost, length == cluster || tailStaysInside());
        }
    }

    /**
     * A unit that reads zeros (no backing file) may map onto the same offset
     * of the file when that whole cluster is a hole there: it reads zeros in
     * the target too, and the hole no longer counts as unreferenced space.
     * A hole holds nothing of the source (its data and tables are written
     * bytes), and kept clusters are never given to the target's tables.
     */
    private boolean identityHole() throws IOException {
        if (hasBacking || guestOffset >= identityHolesBelow || length != cluster || guestOffset % cluster != 0
                || !rules.canKeepDataAt(guestOffset)) {
            return false;
        }
        if (rules.hostKeepsData(guestOffset)) {
            return false; // a data cluster stored sparse at this offset: it stays there
        }
        // one query answers for every cluster up to the next data (a sparse file has long holes)
        if (guestOffset < holeFrom || guestOffset >= nextDataAfterHole) {
            holeFrom = guestOffset;
            nextDataAfterHole = source.storage().nextData(guestOffset);
        }
        return nextDataAfterHole >= guestOffset + cluster;
    }


    private void classifyRaw(boolean anyData) {
        if (!anyData && guestOffset >= identityHolesBelow) {
            kind = Kind.SKIP; // a hole: unallocated in the target reads the same zeros
        } else if (!anyData && !rules.canKeepDataAt(guestOffset)) {
            kind = Kind.SKIP; // a hole inside the header zone: nothing to keep
        } else {
            keepOrMove(guestOffset, true);
        }
    }

    /**
     * The disk's last, partial cluster may keep its data only when the rest of
     * the host cluster cannot belong to anything else: the source allocates
     * in units that are multiples of the target cluster.
     */
    private boolean tailStaysInside() {
        return sourceUnit > 0 && sourceUnit % cluster == 0;
    }

    private void keepOrMove(long h, boolean wholeUnit) {
        if (h % cluster != 0) {
            move(MoveReason.UNALIGNED);
        } else if (!rules.canKeepDataAt(h)) {
            move(h < rules.headerZone() ? MoveReason.HEADER_ZONE : MoveReason.OUT_OF_RANGE);
        } else if (!wholeUnit) {
            move(MoveReason.FRAGMENTED);
        } else {
            kind = Kind.KEEP;
            host = h;
        }
    }

    private void move(MoveReason why) {
        kind = Kind.MOVE;
        reason = why;
    }
}
