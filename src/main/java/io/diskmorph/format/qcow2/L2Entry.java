package io.diskmorph.format.qcow2;

/**
 * The one decoder (and encoder) of qcow2 L2 entries (qcow2.rst "Cluster
 * mapping", "Extended L2 Entries", "Compressed Clusters Descriptor"), read
 * the way qemu's qcow2_get_cluster_type and qcow2_get_subcluster_type read
 * them. Static methods over the raw words, so the walks over millions of
 * entries allocate nothing.
 *
 * <p>A standard entry is one word; an extended entry is the word and a
 * subcluster bitmap (bits 0-31 allocated, 32-63 reads as zeros).
 */
final class L2Entry {
    /** Bit 63: the cluster's refcount is exactly one (never set on compressed clusters). */
    static final long COPIED = 1L << 63;
    /** Bit 62: a compressed cluster descriptor. */
    static final long COMPRESSED_FLAG = 1L << 62;
    /** Bit 0 (v3, standard entries only): the cluster reads as zeros. */
    static final long ZERO_FLAG = 1L;
    /** Bits 9-55: host offset of the data cluster (qemu L2E_OFFSET_MASK). */
    static final long OFFSET_MASK = 0x00ff_ffff_ffff_fe00L;
    /** Bits a standard, uncompressed entry must leave clear (qemu L2E_STD_RESERVED_MASK). */
    static final long STD_RESERVED = 0x3f00_0000_0000_01feL;
    /** Subcluster bitmap: every subcluster allocated / every subcluster reads as zeros. */
    static final long ALL_ALLOCATED = 0xffff_ffffL;
    static final long ALL_ZEROES = 0xffff_ffffL << 32;
    static final int SUBCLUSTERS = 32;

    // What a guest range is in this layer (qemu's QCow2SubclusterType); a whole
    // cluster is one of COMPRESSED, NORMAL, ZERO_PLAIN, ZERO_ALLOC, UNALLOCATED.
    static final int UNALLOCATED = 0;
    /** Extended L2: an unallocated subcluster of a cluster that has a host offset. */
    static final int UNALLOCATED_ALLOC = 1;
    static final int ZERO_PLAIN = 2;
    static final int ZERO_ALLOC = 3;
    static final int NORMAL = 4;
    static final int COMPRESSED = 5;

    private L2Entry() {
    }

    /**
     * qcow2_get_cluster_type. With an external data file host offset 0 is
     * valid, and COPIED (always set there) tells it from "unallocated".
     */
    static int type(long entry, boolean extendedL2, boolean dataFile) {
        if ((entry & COMPRESSED_FLAG) != 0) {
            return COMPRESSED;
        }
        long host = entry & OFFSET_MASK;
        if (!extendedL2 && (entry & ZERO_FLAG) != 0) {
            return host != 0 ? ZERO_ALLOC : ZERO_PLAIN;
        }
        return host != 0 || dataFile && (entry & COPIED) != 0 ? NORMAL : UNALLOCATED;
    }

    /** Whether the cluster has host space of its own (a data or preallocated zero cluster). */
    static boolean hasHost(int type) {
        return type == NORMAL || type == ZERO_ALLOC;
    }

    /**
     * qcow2_get_subcluster_type of subcluster {@code sc} of an entry whose
     * bitmap is valid ({@link #problem}); a standard entry is one unit.
     */
    static int subclusterType(long entry, long bitmap, int sc, boolean extendedL2, boolean dataFile) {
        int type = type(entry, extendedL2, dataFile);
        if (!extendedL2 || type == COMPRESSED) {
            return type;
        }
        boolean host = type == NORMAL;
        if ((bitmap & (1L << (SUBCLUSTERS + sc))) != 0) {
            return host ? ZERO_ALLOC : ZERO_PLAIN;
        }
        if ((bitmap & (1L << sc)) != 0) {
            return NORMAL;
        }
        return host ? UNALLOCATED_ALLOC : UNALLOCATED;
    }

    /** Host offset of a data or preallocated zero cluster (0 when none); not for compressed entries. */
    static long hostOffset(long entry) {
        return entry & OFFSET_MASK;
    }

    static boolean isCompressed(long entry) {
        return (entry & COMPRESSED_FLAG) != 0;
    }

    static boolean isCopied(long entry) {
        return (entry & COPIED) != 0;
    }

    /**
     * What an image open for reading or writing refuses in an entry (the
     * same as qemu's I/O paths), or null: a misaligned host offset, a zero
     * flag in a version 2 image, an invalid subcluster bitmap, a compressed
     * cluster with an external data file.
     */
    static String problem(Qcow2Geometry geo, int version, long entry, long bitmap, boolean dataFile) {
        int type = type(entry, geo.extendedL2, dataFile);
        if (type == COMPRESSED) {
            return dataFile ? "compressed cluster in an image with an external data file" : null;
        }
        long host = hostOffset(entry);
        if (!geo.isClusterAligned(host)) {
            return String.format("data cluster offset 0x%x is not cluster-aligned", host);
        }
        if (!geo.extendedL2) {
            return (entry & ZERO_FLAG) != 0 && version < 3 ? "zero cluster in a version 2 image" : null;
        }
        return isBitmapInvalid(bitmap, type == NORMAL) ? String.format("invalid subcluster bitmap 0x%016x", bitmap)
                : null;
    }

    /**
     * An extended entry's bitmap is invalid when a subcluster is both
     * allocated and zero, or when a cluster without host space claims
     * allocated subclusters.
     */
    static boolean isBitmapInvalid(long bitmap, boolean hasHost) {
        return hasHost ? ((bitmap >>> SUBCLUSTERS) & bitmap) != 0 : (bitmap & ALL_ALLOCATED) != 0;
    }

    /** Bits {@code first..last} of a subcluster half-bitmap. */
    static long subclusterMask(int first, int last) {
        return (last == SUBCLUSTERS - 1 ? ALL_ALLOCATED : (1L << (last + 1)) - 1) & ~((1L << first) - 1);
    }

    // ---- compressed cluster descriptor: offset in the low bits, sector count above ----

    static long compressedOffset(Qcow2Geometry geo, long entry) {
        return entry & geo.compressedOffsetMask;
    }

    /** Number of 512-byte sectors the compressed data touches (qemu nb_csectors). */
    static long compressedSectors(Qcow2Geometry geo, long entry) {
        return ((entry >>> geo.csizeShift) & geo.csizeMask) + 1;
    }

    /** Bytes of compressed data available from the descriptor's offset (qemu csize). */
    static int compressedLength(Qcow2Geometry geo, long entry) {
        return (int) (compressedSectors(geo, entry) * 512 - (compressedOffset(geo, entry) & 511));
    }

    /** First host cluster index the compressed data touches. */
    static long compressedFirstCluster(Qcow2Geometry geo, long entry) {
        return compressedOffset(geo, entry) >>> geo.clusterBits;
    }

    /** Number of host clusters the compressed data touches (each holds a reference for it). */
    static long compressedClusters(Qcow2Geometry geo, long entry) {
        long start = compressedOffset(geo, entry);
        return ((start + compressedLength(geo, entry) - 1) >>> geo.clusterBits) - (start >>> geo.clusterBits) + 1;
    }

    // ---- encoders ----

    /** A data cluster with refcount 1. */
    static long normal(long hostOffset) {
        return hostOffset | COPIED;
    }

    /** {@code length} bytes of compressed data at {@code hostOffset}. */
    static long compressed(Qcow2Geometry geo, long hostOffset, int length) {
        long extraSectors = ((hostOffset + length - 1) >>> 9) - (hostOffset >>> 9);
        return COMPRESSED_FLAG | (extraSectors << geo.csizeShift) | hostOffset;
    }
}
