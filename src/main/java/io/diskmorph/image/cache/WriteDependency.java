package io.diskmorph.image.cache;

import java.io.IOException;

/**
 * Metadata whose writes must be durable before writes that depend on them
 * are made (qemu's cache dependencies, block/qcow2-cache.c): a refcount
 * block before the L2 entry that references its new cluster, an L2 table
 * before the L1 entry that points to it, guest data before the entry that
 * maps it.
 */
@FunctionalInterface
public interface WriteDependency {
    /** Writes whatever is held back (after its own dependencies) and makes it durable. */
    void flush() throws IOException;
}
