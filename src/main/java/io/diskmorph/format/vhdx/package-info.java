/**
 * Hyper-V's VHDX, read only: the file identifier, the two headers (the
 * current one by sequence number, CRC-32C), the region table (BAT and
 * metadata regions), the metadata items (file parameters, virtual disk size,
 * logical and physical sector sizes, page 83 id, parent locator), the BAT
 * with its sector bitmap entries interleaved every chunk ratio payload
 * entries, and the payload block states. A differencing image reads its
 * partially present blocks through the sector bitmap and the rest through
 * its parent (the locator's relative path, opened like a backing file and
 * checked against parent_linkage). An image whose log is active (a host
 * that lost power) is read through its log: the active sequence's writes
 * are laid over the file in memory, so reads see what a replay would leave,
 * and the file is never written (qemu refuses such an image read-only);
 * it is not an in-place source until replayed.
 *
 * <p>Follows [MS-VHDX] (Microsoft's VHDX format specification 1.0), libyal's
 * libvhdi documentation ("Virtual Hard Disk version 2 (VHDX) image format")
 * and QEMU 7.2's block/vhdx.c for what qemu-img reads, reports and checks
 * (qemu cannot open differencing images; diskmorph reads them).
 *
 * <ul>
 * <li>{@link io.diskmorph.format.vhdx.VhdxFormat}: the driver (qemu's probe
 *     rule), refusing create and writes by name;</li>
 * <li>{@link io.diskmorph.format.vhdx.VhdxLayout}: headers, region table,
 *     metadata and geometry, parsed once and bounded;</li>
 * <li>{@link io.diskmorph.format.vhdx.VhdxImage}: an open disk: mapping
 *     through the BAT (pages in a bounded cache, {@link
 *     io.diskmorph.format.vhdx.BatPage}) and sector bitmaps ({@link
 *     io.diskmorph.format.vhdx.BitmapPage}), the parent, info;</li>
 * <li>{@link io.diskmorph.format.vhdx.VhdxLog}: the log's active sequence
 *     and its overlay;</li>
 * <li>{@link io.diskmorph.format.vhdx.VhdxChecker}: qemu's check and what it
 *     misses;</li>
 * <li>{@link io.diskmorph.format.vhdx.Guid}: GUIDs in Microsoft's byte
 *     order.</li>
 * </ul>
 */
package io.diskmorph.format.vhdx;
