package io.diskmorph.format.vmdk;

import io.diskmorph.image.Mapping;

/** A ZERO extent: a guest range that reads as zeros and has no file. */
final class ZeroExtent extends Extent {
    ZeroExtent(long guestStart, long length) {
        super(guestStart, length, "ZERO", null);
    }

    @Override
    Mapping mapping(long offset, long max) {
        return new Mapping.Zero(max);
    }

    @Override
    long statusEnd(long offset) {
        return length;
    }
}
