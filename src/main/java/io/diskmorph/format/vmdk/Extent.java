package io.diskmorph.format.vmdk;

import io.diskmorph.image.Mapping;
import io.diskmorph.storage.Storage;

import java.io.IOException;

/**
 * One extent of a VMDK disk: a guest range [guestStart, guestStart + length)
 * stored in a file of its own (flat or sparse) or in none (ZERO). Host
 * offsets in the answers are offsets in {@link #file}, which every data
 * answer names ({@link Mapping.Data#file()}).
 */
abstract sealed class Extent permits FlatExtent, SparseExtent, ZeroExtent {
    final long guestStart;
    final long length;
    /** The descriptor's type word (FLAT, SPARSE, ...), "" for a sparse file opened without a descriptor (qemu). */
    final String type;
    /** The extent's file, or null (ZERO). */
    final Storage file;

    Extent(long guestStart, long length, String type, Storage file) {
        this.guestStart = guestStart;
        this.length = length;
        this.type = type;
        this.file = file;
    }

    long guestEnd() {
        return guestStart + length;
    }

    /**
     * This extent's answer for [offset, offset + max) (offsets inside the
     * extent, max >= 1, the range inside it): one kind of range, as long as
     * it goes.
     */
    abstract Mapping mapping(long offset, long max) throws IOException;

    /**
     * Where qemu 7.2's block status answer that starts at {@code offset}
     * ends at the latest (vmdk_co_block_status): the end of the grain for
     * sparse extents, of the extent otherwise.
     */
    abstract long statusEnd(long offset);

    /** Grain size in bytes, 0 for extents without grains. */
    long grainBytes() {
        return 0;
    }
}
