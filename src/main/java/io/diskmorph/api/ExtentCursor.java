package io.diskmorph.api;

import io.diskmorph.image.ChainMap;

/**
 * Walks an image's {@link Extent}s in guest order, reading the metadata as
 * it goes: memory stays bounded on a sparse disk of terabytes. Valid while
 * its {@link Image} is open.
 */
public final class ExtentCursor {
    private final ChainMap map;

    ExtentCursor(ChainMap map) {
        this.map = map;
    }

    /**
     * Whether another extent follows.
     *
     * @return true until the end of the range
     */
    public boolean hasNext() {
        return map.hasNext();
    }

    /**
     * The next extent.
     *
     * @return the extent, merged with its neighbours of the same kind as qemu-img map merges
     * @throws DiskmorphException when the metadata cannot be read or is corrupt
     * @throws java.util.NoSuchElementException after the last extent
     */
    public Extent next() throws DiskmorphException {
        if (!map.hasNext()) {
            throw new java.util.NoSuchElementException("no extent after the end of the range");
        }
        return Failures.translating(() -> Extent.of(map.next()));
    }
}
