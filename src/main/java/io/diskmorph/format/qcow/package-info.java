/**
 * qcow version 1 (format name {@code qcow}), following QEMU 7.2's
 * block/qcow.c: what qemu-img reads, writes, creates and maps (the tests
 * compare with qemu-img 7.2).
 *
 * <ul>
 * <li>{@link io.diskmorph.format.qcow.QcowFormat}: the driver (qemu's
 *     probe: magic and version 1), create as qemu-img writes it byte for
 *     byte (4 KiB clusters and L2 tables; 512-byte clusters and 32 KiB L2
 *     tables over a backing file), measure (qemu-img 7.2 has none for
 *     qcow: diskmorph's own figures);</li>
 * <li>{@link io.diskmorph.format.qcow.QcowHeader}: the 48-byte header with
 *     qemu's open checks, and the bounds qemu leaves to zero-filled reads
 *     (tables and names past the end of the file) as corruption; encrypted
 *     images refused by name;</li>
 * <li>{@link io.diskmorph.format.qcow.QcowImage}: L1 pages and L2 tables
 *     through the shared metadata cache, compressed clusters (raw deflate,
 *     bit 63 and a size field cluster_bits wide), backing files, guest
 *     writes appended at the end of the file as qemu allocates, the flush
 *     order data, L2, L1;</li>
 * <li>{@link io.diskmorph.format.qcow.QcowChecker}: diskmorph's own
 *     structure check (qemu-img has none for qcow);</li>
 * <li>{@link io.diskmorph.format.qcow.Table}: an L2 table or L1 page as the
 *     caches hold it.</li>
 * </ul>
 */
package io.diskmorph.format.qcow;
