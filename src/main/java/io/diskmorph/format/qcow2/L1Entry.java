package io.diskmorph.format.qcow2;

/**
 * The one decoder of qcow2 L1 entries (qcow2.rst "Cluster mapping"): bits
 * 9-55 the host offset of an L2 table (0: none), bit 63 COPIED (the table's
 * refcount is exactly one), the rest reserved.
 */
final class L1Entry {
    static final long COPIED = 1L << 63;
    /** qemu L1E_OFFSET_MASK. */
    static final long OFFSET_MASK = 0x00ff_ffff_ffff_fe00L;
    /** qemu L1E_RESERVED_MASK. */
    static final long RESERVED = 0x7f00_0000_0000_01ffL;

    private L1Entry() {
    }

    /** Host offset of the L2 table, 0 when the entry has none. */
    static long l2Offset(long entry) {
        return entry & OFFSET_MASK;
    }

    static boolean isCopied(long entry) {
        return (entry & COPIED) != 0;
    }

    static boolean hasReservedBits(long entry) {
        return (entry & RESERVED) != 0;
    }

    /** An entry for an L2 table with refcount 1. */
    static long of(long l2Offset) {
        return l2Offset | COPIED;
    }
}
