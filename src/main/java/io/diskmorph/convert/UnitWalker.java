package io.diskmorph.convert;

import io.diskmorph.image.DiskImage;
import io.diskmorph.image.Mapping;
import io.diskmorph.image.UnsupportedFeatureException;
import io.diskmorph.storage.Storage;

import java.io.IOException;

/**
 * Walks a source image's top layer in target-cluster units, in guest order,
 * and says what each unit becomes in the target: unallocated, a zero
 * cluster, data kept at its host offset, or data that must move (and why).
 * Deterministic: two walks over the same source give the same units, which is
 * what lets the converter plan in a dry run and replay for real.
 *
 * <p>Zeros are not data. A unit that reads zeros by the source's metadata
 * alone, never by reading it (zero clusters, unallocated clusters without a
 * backing file, data clusters whose bytes are a hole of the file), is never
 * kept as data or moved: it becomes unallocated where that reads zeros,
 * else a zero cluster, and only a target without zero clusters over a
 * backing file has to write zeros.
 */
final class UnitWalker {

    enum Kind { SKIP, ZERO, KEEP, MOVE }

    /** What the target can hold. */
    interface Rules {
        long clusterSize();

        long headerZone();

        boolean canKeepDataAt(long hostOffset);

        boolean supportsZeroClusters();
    }

    private final DiskImage source;
    private final Rules rules;
    private final long cluster;
    private final long virtualSize;
    private final boolean hasBacking;
    private final long sourceUnit;
    private final Storage file;
    private final long fileSize;

    // the last sparse query of the file: [holeFrom, holeEnd) is a hole, [dataFrom, dataEnd) holds data
    private long holeFrom = -1;
    private long holeEnd = -1;
    private long dataFrom = -1;
    private long dataEnd = -1;

    // cursor over the source mapping
    private long extentStart;
    private long extentEnd;
    private Mapping extent;

    // current unit
    long guestOffset = -1;
    long length;
    Kind kind;
    long host = -1;
    /** Where the unit's data starts in the source file (kept or moved), -1 when not data of the source's file. */
    long sourceHost = -1;
    MoveReason reason;
    /** The unit is mapped as data in the source but its bytes are a hole of the file: it reads zeros. */
    boolean dataInHole;
    /** Guest bytes so far that the source maps as data in holes of the file (they read zeros, nothing moves). */
    long zeroedDataBytes;

    UnitWalker(DiskImage source, Rules rules, boolean hasBacking) throws IOException {
        this.source = source;
        this.rules = rules;
        this.cluster = rules.clusterSize();
        this.virtualSize = source.virtualSize();
        this.hasBacking = hasBacking;
        this.sourceUnit = source.clusterSize();
        this.file = source.dataStorage();
        this.fileSize = file.size();
    }

    /** Advances to the next unit; false at the end of the disk. */
    boolean next() throws IOException {
        long g = guestOffset < 0 ? 0 : guestOffset + cluster;
        if (g >= virtualSize) {
            return false;
        }
        // Fast path over long runs that read zeros and stay unallocated (a sparse TiB disk, a preallocated
        // image whose data clusters are holes): whole units inside the run are skipped together, as the
        // caller does nothing for them.
        if (kind == Kind.SKIP && g >= extentStart && g < extentEnd) {
            long runEnd = skippableEnd(g);
            if (g + cluster <= runEnd) {
                long skipped = ((runEnd - g) / cluster - 1) * cluster;
                if (extent instanceof Mapping.Data) {
                    zeroedDataBytes += skipped;
                }
                g += skipped;
            }
        }
        guestOffset = g;
        length = Math.min(cluster, virtualSize - g);
        host = -1;
        sourceHost = -1;
        reason = null;
        dataInHole = false;
        classify();
        if (dataInHole) {
            zeroedDataBytes += length;
        }
        return true;
    }

    /** End of the run from {@code g} (inside the current extent) whose units would all be skipped. */
    private long skippableEnd(long g) throws IOException {
        return switch (extent) {
            case Mapping.Unallocated u -> extentEnd; // falls through to the backing file, or reads zeros
            case Mapping.Zero z -> hasBacking ? g : extentEnd; // a zero cluster must hide the backing file
            case Mapping.Data d -> {
                if (hasBacking) {
                    yield g; // data in a hole must hide the backing file: zero clusters, unit by unit
                }
                long h = d.hostOffset() + (g - extentStart);
                yield Math.min(extentEnd, g + (holeEndAt(h) - h));
            }
            case Mapping.Compressed c -> g;
        };
    }

    private Mapping extentAt(long pos) throws IOException {
        if (extent == null || pos < extentStart || pos >= extentEnd) {
            extent = source.mapping(pos, virtualSize - pos);
            extentStart = pos;
            extentEnd = pos + extent.length();
        }
        return extent;
    }

    /** The end of the hole of the file at {@code h}, or {@code h} itself when it holds data (answers cached). */
    private long holeEndAt(long h) throws IOException {
        if (h >= fileSize) {
            return Long.MAX_VALUE; // past the end the file reads zeros
        }
        if (h >= holeFrom && h < holeEnd) {
            return holeEnd;
        }
        if (h >= dataFrom && h < dataEnd) {
            return h;
        }
        long next = file.nextData(h);
        if (next > h) {
            holeFrom = h;
            holeEnd = next;
            return next;
        }
        dataFrom = h;
        dataEnd = file.nextHole(h);
        return h;
    }

    private void classify() throws IOException {
        long end = guestOffset + length;
        boolean anyData = false; // bytes of the file that may hold anything
        boolean anyZero = false; // reads zeros whatever lies below (zero clusters, data in holes)
        boolean anyUnallocated = false;
        boolean anyCompressed = false;
        boolean anyHoleData = false;
        boolean contiguous = true;
        long firstHost = -1;
        long nextHost = -1;
        for (long pos = guestOffset; pos < end; ) {
            Mapping m = extentAt(pos);
            long n = Math.min(end, extentEnd) - pos;
            switch (m) {
                case Mapping.Data d -> {
                    requireOwnFile(d, pos);
                    long h = d.hostOffset() + (pos - extentStart);
                    if (firstHost < 0 && pos == guestOffset) {
                        firstHost = h;
                    } else if (h != nextHost) {
                        contiguous = false;
                    }
                    nextHost = h + n;
                    if (holeEndAt(h) >= h + n) {
                        anyZero = true;
                        anyHoleData = true;
                    } else {
                        anyData = true;
                    }
                }
                case Mapping.Zero z -> {
                    anyZero = true;
                    long h = z.hostOffset() + (pos - extentStart);
                    if (z.hasHostOffset() && holeEndAt(h) >= h + n) {
                        // zeros whose host bytes are a hole (a raw file's holes): as good as data for keeping
                        // the unit in place, since the hole reads zeros in the target too
                        if (firstHost < 0 && pos == guestOffset) {
                            firstHost = h;
                        } else if (h != nextHost) {
                            contiguous = false;
                        }
                        nextHost = h + n;
                    } else {
                        contiguous = false; // no host bytes, or bytes that are not zeros: cannot stay as data
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
        if (anyCompressed) {
            move(MoveReason.COMPRESSED);
        } else if (!anyData) {
            dataInHole = anyHoleData;
            if (!anyZero) {
                kind = Kind.SKIP;
            } else if (!anyUnallocated || !hasBacking) {
                // reads zeros whole: a zero cluster, or nothing at all where zeros are the default
                kind = !hasBacking ? Kind.SKIP : rules.supportsZeroClusters() ? Kind.ZERO : Kind.MOVE;
                if (kind == Kind.MOVE) {
                    reason = MoveReason.MATERIALIZED;
                }
            } else {
                move(MoveReason.MATERIALIZED);
            }
        } else if (anyUnallocated || (anyZero && !contiguous)) {
            move(MoveReason.MATERIALIZED);
        } else if (!contiguous) {
            move(MoveReason.FRAGMENTED);
        } else {
            // contiguous host bytes, partly holes maybe: kept, the holes stay holes and read zeros
            keepOrMove(firstHost, length == cluster || tailStaysInside(firstHost));
        }
    }

    /**
     * Only the image's own file is rewritten: data that lives in another file
     * (an extent file the driver did not refuse by itself) could be neither
     * kept nor journaled, so the conversion is refused before anything is
     * written (the plan walks every unit first).
     */
    private void requireOwnFile(Mapping.Data d, long pos) throws UnsupportedFeatureException {
        if (d.file() != null && d.file() != file) {
            throw new UnsupportedFeatureException("guest data at offset " + pos + " lives in another file ("
                    + d.file().name() + "); in-place conversion rewrites the image's own file only");
        }
    }

    /**
     * The disk's last, partial cluster may keep its data only when the rest of
     * the host cluster cannot belong to anything else: the source allocates
     * in units that are multiples of the target cluster, or the rest lies
     * past the end of the file (an identity-mapped source such as raw).
     */
    private boolean tailStaysInside(long host) {
        return sourceUnit > 0 && sourceUnit % cluster == 0 || host + length >= fileSize;
    }

    private void keepOrMove(long h, boolean wholeUnit) {
        sourceHost = h;
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
