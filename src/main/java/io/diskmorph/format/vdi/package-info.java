/**
 * VirtualBox's VDI, following QEMU 7.2's block/vdi.c (what qemu-img reads,
 * writes, creates, maps and checks: the tests compare with qemu-img 7.2) and
 * VirtualBox's layout (src/VBox/Storage/VDI.cpp, VDICore.h: the pre-header
 * text and signature, the version 1.1 header, the block map, offsets
 * aligned to 1 MiB in the images VirtualBox creates).
 *
 * <ul>
 * <li>{@link io.diskmorph.format.vdi.VdiFormat}: the driver (qemu's probe:
 *     the signature at 0x40), create as qemu-img lays it out (dynamic, or
 *     static=on), measure (qemu-img 7.2 has none for VDI);</li>
 * <li>{@link io.diskmorph.format.vdi.VdiHeader}: the header, with qemu's
 *     open checks and the bounds qemu skips (a map inside the header, past
 *     the end of the file or over the data area; extra bytes per block);</li>
 * <li>{@link io.diskmorph.format.vdi.BlockMap}: the map of u32 entries, in
 *     pages of 64 KiB through the shared metadata cache (qemu reads it
 *     whole, up to 4 GiB);</li>
 * <li>{@link io.diskmorph.format.vdi.VdiImage}: mapping, guest writes
 *     (new blocks appended at blocks_allocated, as qemu), the flush order
 *     data, header, map;</li>
 * <li>{@link io.diskmorph.format.vdi.VdiChecker}: qemu's check with its
 *     messages, and what it misses;</li>
 * <li>{@link io.diskmorph.format.vdi.VdiLayoutBuilder}: a dynamic VDI built
 *     over blocks that stay where they are (the target of in-place
 *     conversion): map after the header, data from the next MiB, host
 *     blocks dense.</li>
 * </ul>
 */
package io.diskmorph.format.vdi;
