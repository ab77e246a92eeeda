/**
 * The QED driver, following QEMU's docs/interop/qed_spec.txt and, for
 * behaviour, QEMU 7.2's block/qed.c, block/qed-table.c and
 * block/qed-check.c; qemu-img 7.2 is the oracle of the tests.
 *
 * <p>What lives here: {@link io.diskmorph.format.qed.QedFormat} (the driver
 * entry: probe, open, create, measure) and
 * {@link io.diskmorph.format.qed.QedHeader};
 * {@link io.diskmorph.format.qed.QedImage}, reading and writing through
 * two {@link io.diskmorph.image.cache.MetadataCache}s of
 * {@link io.diskmorph.format.qed.TablePage}s (L1 and L2 pages of at most
 * 64 KiB: memory does not depend on the table size), with QEMU's write
 * order declared as dependencies (data, L2, L1) and its need-check bit;
 * {@link io.diskmorph.format.qed.QedChecker}, qemu-img check's counters
 * (and its phantom leaks, documented);
 * {@link io.diskmorph.format.qed.QedLayoutBuilder}, the metadata of create
 * and of in-place conversion targets; and
 * {@link io.diskmorph.format.qed.QedMeasure}.
 */
package io.diskmorph.format.qed;
