/**
 * The qcow2 driver (versions 2 and 3), following docs/interop/qcow2.rst of
 * QEMU 7.2 and, for behaviour, QEMU's block/qcow2*.c; qemu-img 7.2 is the
 * oracle of the tests.
 *
 * <p>What lives here, split as QEMU splits its driver:
 * <ul>
 * <li>format and header: {@link io.diskmorph.format.qcow2.Qcow2Format} (the
 *     driver entry: probe, open, create, measure),
 *     {@link io.diskmorph.format.qcow2.Qcow2Header} with
 *     {@link io.diskmorph.format.qcow2.HeaderExtension},
 *     {@link io.diskmorph.format.qcow2.Qcow2Geometry} (sizes from
 *     cluster_bits, extended_l2, refcount_order), the create options
 *     (block/qcow2.c);</li>
 * <li>tables: {@link io.diskmorph.format.qcow2.L1Entry} and
 *     {@link io.diskmorph.format.qcow2.L2Entry}, the one decoder of each
 *     entry (cluster and subcluster types as qcow2_get_cluster_type and
 *     qcow2_get_subcluster_type read them, compressed descriptors);
 *     {@link io.diskmorph.format.qcow2.L1Table} (paged, a write dependency)
 *     and {@link io.diskmorph.format.qcow2.L2Table} (held by the shared
 *     {@link io.diskmorph.image.cache.MetadataCache}) (block/qcow2-cluster.c);</li>
 * <li>reading and writing: {@link io.diskmorph.format.qcow2.Qcow2Image}
 *     (mapping, compressed clusters, info) and
 *     {@link io.diskmorph.format.qcow2.Qcow2Writer} (allocation, copy on
 *     write, zero and compressed writes; write ordering declared as cache
 *     dependencies, as block/qcow2-cache.c does);</li>
 * <li>refcounts: {@link io.diskmorph.format.qcow2.Refcounts} (the table, the
 *     blocks in a MetadataCache, allocation, deferred frees) and
 *     {@link io.diskmorph.format.qcow2.MetadataOverlap}, the one overlap
 *     check of the writer and of check's repairs (block/qcow2-refcount.c);</li>
 * <li>check and repair, coordinated by
 *     {@link io.diskmorph.format.qcow2.Qcow2Checker} (qcow2_co_check_locked):
 *     {@link io.diskmorph.format.qcow2.MappingTablesCheck},
 *     {@link io.diskmorph.format.qcow2.RefcountCheck},
 *     {@link io.diskmorph.format.qcow2.RefcountRebuild} and
 *     {@link io.diskmorph.format.qcow2.StoredRefcounts}
 *     (block/qcow2-refcount.c),
 *     {@link io.diskmorph.format.qcow2.SnapshotTableCheck} beside
 *     {@link io.diskmorph.format.qcow2.SnapshotTable}
 *     (block/qcow2-snapshot.c),
 *     {@link io.diskmorph.format.qcow2.BitmapDirectoryCheck} beside
 *     {@link io.diskmorph.format.qcow2.BitmapDirectory}
 *     (block/qcow2-bitmap.c), sharing a
 *     {@link io.diskmorph.format.qcow2.CheckContext}; messages, counters and
 *     exit codes are qemu-img check's;</li>
 * <li>layout: {@link io.diskmorph.format.qcow2.Qcow2LayoutBuilder}, the
 *     metadata of create and of in-place conversion targets, and
 *     {@link io.diskmorph.format.qcow2.Qcow2Measure} (qemu-img measure);</li>
 * <li>compression: {@link io.diskmorph.format.qcow2.Compression} (deflate,
 *     zstd) and {@link io.diskmorph.format.qcow2.Qcow2Compressor}.</li>
 * </ul>
 *
 * <p>Memory never grows with the virtual size: tables are paged or cached
 * in bounded caches, check's tally is a byte per referenced cluster.
 */
package io.diskmorph.format.qcow2;
