package io.diskmorph.copy;

import io.diskmorph.image.ChainMap;
import io.diskmorph.image.DiskImage;
import io.diskmorph.image.MapEntry;
import io.diskmorph.image.Mapping;

import java.io.IOException;

/**
 * The source as qemu-img convert sees it (qemu-img.c
 * convert_iteration_sectors): each guest range is data to copy, zeros, or
 * (when the target has a backing file) left to that backing file. Without
 * -B the whole chain answers; with -B only the source's top layer counts,
 * since the target's backing file is taken to hold what the source's
 * backing chain holds. Zeros past the end of the target's backing file are
 * left alone too: the target reads zeros there anyway.
 *
 * <p>Positions only move forward. {@link #statusAt} answers from the current
 * run while it covers the position, so walking in small steps costs one
 * mapping query per run, not per step.
 */
final class SourceWalker {
    enum Status { DATA, ZERO, BACKING }

    /** Largest range asked of the source at once. */
    private static final long MAX_QUERY = 1L << 30;

    private final DiskImage source;
    private final long sourceSize;
    private final long end;
    private final boolean topOnly;
    private final long targetBackingSize;

    private long runStart;
    private long runEnd;
    private Status runStatus;
    /** Length of the range the last {@link #query} answered. */
    private long queried;
    // one range read ahead while merging, handed out by a query at its start
    private long pendingStart = -1;
    private Status pendingStatus;
    private long pendingLength;

    /**
     * @param end               end of the walk: the source size rounded up to a sector (the tail reads as zeros)
     * @param topOnly           the target has a backing file (-B): only the source's top layer is copied
     * @param targetBackingSize virtual size of the target's backing file, -1 when unknown or none
     */
    SourceWalker(DiskImage source, long end, boolean topOnly, long targetBackingSize) {
        this.source = source;
        this.sourceSize = source.virtualSize();
        this.end = end;
        this.topOnly = topOnly;
        this.targetBackingSize = targetBackingSize;
    }

    /** Status of the range starting at {@code pos}; {@link #runEnd()} then tells where it ends. */
    Status statusAt(long pos) throws IOException {
        if (runStatus != null && pos >= runStart && pos < runEnd) {
            return runStatus;
        }
        runStart = pos;
        runStatus = query(pos);
        runEnd = pos + queried;
        // merge following ranges of the same status, so chunks are not cut at every cluster run
        while (runEnd < end && runEnd - runStart < MAX_QUERY) {
            Status next = query(runEnd);
            if (next != runStatus) {
                pendingStart = runEnd;
                pendingStatus = next;
                pendingLength = queried;
                break;
            }
            runEnd += queried;
        }
        return runStatus;
    }

    /** End of the run {@link #statusAt} last answered. */
    long runEnd() {
        return runEnd;
    }

    private Status query(long pos) throws IOException {
        if (pos == pendingStart) {
            pendingStart = -1;
            queried = pendingLength;
            return pendingStatus;
        }
        pendingStart = -1;
        long max = Math.min(end - pos, MAX_QUERY);
        if (targetBackingSize >= 0 && pos < targetBackingSize) {
            max = Math.min(max, targetBackingSize - pos); // zeros past it are handled differently
        }
        Status s;
        if (pos >= sourceSize) {
            queried = max; // the sector tail past an unaligned source size
            s = Status.ZERO;
        } else {
            max = Math.min(max, sourceSize - pos);
            s = topOnly ? topLayer(pos, max) : chain(pos, max);
        }
        if (s == Status.ZERO && targetBackingSize >= 0 && pos >= targetBackingSize) {
            s = Status.BACKING;
        }
        return s;
    }

    private Status chain(long pos, long max) throws IOException {
        MapEntry e = ChainMap.entryAt(source, pos, max);
        queried = e.length();
        return e.zero() ? Status.ZERO : e.data() ? Status.DATA : Status.ZERO;
    }

    private Status topLayer(long pos, long max) throws IOException {
        Mapping m = source.mapping(pos, max);
        if (m instanceof Mapping.Unallocated) {
            DiskImage b = source.backing();
            long len = m.length();
            if (b == null || pos >= b.virtualSize()) {
                queried = len; // nothing below: reads as zeros
                return Status.ZERO;
            }
            queried = Math.min(len, b.virtualSize() - pos);
            return Status.BACKING;
        }
        // allocated in the top layer: the chain answers at depth 0, with its zero and host-hole rules
        return chain(pos, m.length());
    }
}
