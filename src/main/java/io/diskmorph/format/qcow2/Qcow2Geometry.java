package io.diskmorph.format.qcow2;

/**
 * Sizes derived from cluster_bits, extended_l2 and refcount_order (the
 * entries themselves are decoded by {@link L1Entry} and {@link L2Entry}).
 */
final class Qcow2Geometry {
    /** Host offsets must stay below 2^56 (the L2 offset field). */
    static final long MAX_HOST_OFFSET = 1L << 56;

    final int clusterBits;
    final long clusterSize;
    final boolean extendedL2;
    /** Longs per L2 entry: 1, or 2 with extended L2 (entry, bitmap). */
    final int entryWords;
    final int l2Bits;
    final int l2Entries;
    /** Guest bytes one L2 table maps. */
    final int l1Shift;
    final int subclusterBits;
    final long subclusterSize;
    final int refcountOrder;
    final int refcountBits;
    /** Refcount entries per refcount block, as a shift. */
    final int refblockBits;
    /** Compressed descriptor ({@link L2Entry}): offset in bits 0..csizeShift-1, sector count above. */
    final int csizeShift;
    final long csizeMask;
    final long compressedOffsetMask;

    Qcow2Geometry(int clusterBits, boolean extendedL2, int refcountOrder) {
        this.clusterBits = clusterBits;
        this.clusterSize = 1L << clusterBits;
        this.extendedL2 = extendedL2;
        this.entryWords = extendedL2 ? 2 : 1;
        this.l2Bits = clusterBits - (extendedL2 ? 4 : 3);
        this.l2Entries = 1 << l2Bits;
        this.l1Shift = clusterBits + l2Bits;
        this.subclusterBits = extendedL2 ? clusterBits - 5 : clusterBits;
        this.subclusterSize = 1L << subclusterBits;
        this.refcountOrder = refcountOrder;
        this.refcountBits = 1 << refcountOrder;
        this.refblockBits = clusterBits + 3 - refcountOrder;
        this.csizeShift = 62 - (clusterBits - 8);
        this.csizeMask = (1L << (clusterBits - 8)) - 1;
        this.compressedOffsetMask = (1L << csizeShift) - 1;
    }

    static Qcow2Geometry of(Qcow2Header h) {
        return new Qcow2Geometry(h.clusterBits, h.extendedL2(), h.refcountOrder);
    }

    /** L1 entries needed for a virtual disk of {@code size} bytes. */
    long l1EntriesFor(long size) {
        return (size >>> l1Shift) + ((size & ((1L << l1Shift) - 1)) != 0 ? 1 : 0);
    }

    /** Refcount entries in one refcount block. */
    long refblockEntries() {
        return 1L << refblockBits;
    }

    boolean isClusterAligned(long offset) {
        return (offset & (clusterSize - 1)) == 0;
    }
}
