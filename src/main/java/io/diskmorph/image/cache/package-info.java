/**
 * The metadata cache every driver with tables uses, modelled on QEMU's
 * block/qcow2-cache.c: {@link io.diskmorph.image.cache.MetadataCache}
 * holds a bounded number of fixed-size tables
 * ({@link io.diskmorph.image.cache.CachedTable}) keyed by host offset,
 * evicts the least recently used and writes a dirty one back first.
 *
 * <p>Write ordering is data, not a hand-written flush sequence: whatever
 * must be durable before a table is written is registered as a
 * {@link io.diskmorph.image.cache.WriteDependency} (qemu's
 * qcow2_cache_set_dependency and qcow2_cache_depends_on_flush), kept in
 * {@link io.diskmorph.image.cache.Dependencies} and flushed first, whether
 * the table is written by a flush or by an eviction.
 * {@link io.diskmorph.image.cache.SyncTracker} routes a file's writes and
 * syncs it only when something is unsynced, so a chain of dependencies
 * costs one sync per step.
 */
package io.diskmorph.image.cache;
