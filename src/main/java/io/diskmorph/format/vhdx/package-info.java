/**
 * Hyper-V's VHDX: the file identifier, the two headers (the current one by
 * sequence number, CRC-32C), the region table (BAT and metadata regions),
 * the metadata items (file parameters, virtual disk size, logical and
 * physical sector sizes, page 83 id, parent locator), the BAT with its
 * sector bitmap entries interleaved every chunk ratio payload entries, and
 * the payload block states. A differencing image reads its partially
 * present blocks through the sector bitmap and the rest through its parent
 * (the locator's relative path, opened like a backing file and checked
 * against parent_linkage). An image whose log is active (a host that lost
 * power) is read through its log by a reader: the active sequence's writes
 * are laid over the file in memory, and the file is never written (qemu
 * refuses such an image read-only). A writer (and {@code check -r}) first
 * replays the log into the file, syncs, and writes a header without the
 * log GUID, as [MS-VHDX] 2.3.3 says.
 *
 * <p>Writing (dynamic and fixed images; differencing images are refused):
 * create lays a file out as qemu-img 7.2 does; the first write of a session
 * writes a new header (new file and data write GUIDs, the next sequence
 * number, into the other header slot, synced); a write to a block that is
 * not fully present appends a whole new block at the next MiB of the file
 * and sets its BAT entry. BAT entries are written in place, not through the
 * log as qemu writes them. This is crash-safe because the BAT cache depends
 * on the data: a changed BAT page is written only after the data of every
 * block it newly points at is synced, an entry changes only from a state
 * without data to "fully present" at a block past the old end of the file,
 * and each 8-byte entry lies inside one 512-byte sector, which disks write
 * whole. A crash thus leaves each entry old (the new block is unreferenced
 * space past the data, which no VHDX reader counts as an error) or new
 * (pointing at durable data) — never pointing at unwritten data; the same
 * assumption qcow2 and QED make for their L2 entries. Metadata and region
 * tables are never rewritten, so nothing else needs the log.
 *
 * <p>Follows [MS-VHDX] (Microsoft's VHDX format specification 1.0), libyal's
 * libvhdi documentation ("Virtual Hard Disk version 2 (VHDX) image format")
 * and QEMU 7.2's block/vhdx.c for what qemu-img reads, reports and checks
 * (qemu cannot open differencing images; diskmorph reads them).
 *
 * <ul>
 * <li>{@link io.diskmorph.format.vhdx.VhdxFormat}: the driver (qemu's probe
 *     rule, create's options);</li>
 * <li>{@link io.diskmorph.format.vhdx.VhdxCreator}: new files as qemu-img
 *     lays them out;</li>
 * <li>{@link io.diskmorph.format.vhdx.VhdxLayout}: headers, region table,
 *     metadata and geometry, parsed once and bounded;</li>
 * <li>{@link io.diskmorph.format.vhdx.VhdxImage}: an open disk: mapping
 *     through the BAT (pages in a bounded cache, {@link
 *     io.diskmorph.format.vhdx.BatPage}) and sector bitmaps ({@link
 *     io.diskmorph.format.vhdx.BitmapPage}), the parent, info;</li>
 * <li>{@link io.diskmorph.format.vhdx.VhdxLog}: the log's active sequence,
 *     its overlay and its replay;</li>
 * <li>{@link io.diskmorph.format.vhdx.VhdxChecker}: qemu's check and what it
 *     misses;</li>
 * <li>{@link io.diskmorph.format.vhdx.Guid}: GUIDs in Microsoft's byte
 *     order.</li>
 * </ul>
 */
package io.diskmorph.format.vhdx;
