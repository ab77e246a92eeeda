/**
 * Microsoft's VHD, named "vpc" as in qemu-img, following QEMU 7.2's
 * block/vpc.c (what qemu-img reads, writes, creates and maps: the tests
 * compare with qemu-img 7.2 and with libvhdi's vhdiinfo) and Microsoft's
 * "Virtual Hard Disk Image Format Specification" (footer, dynamic header,
 * BAT, sector bitmaps, the CHS geometry algorithm).
 *
 * <ul>
 * <li>{@link io.diskmorph.format.vpc.VpcFormat}: the driver (qemu's probe:
 *     "conectix" at offset 0, so a fixed VHD probes as raw and is opened
 *     with {@code -f vpc}), create as qemu-img lays a VHD out;</li>
 * <li>{@link io.diskmorph.format.vpc.VpcFooter}: the footer, its checksum,
 *     the virtual size as qemu 7.2 reads it (CHS geometry or current_size,
 *     by the creator application), qemu-img create's geometry;</li>
 * <li>{@link io.diskmorph.format.vpc.VpcDynamicHeader}: the dynamic header,
 *     with qemu's open checks and the bounds qemu leaves out;</li>
 * <li>{@link io.diskmorph.format.vpc.Bat}: the BAT in 64 KiB pages through
 *     the shared metadata cache;</li>
 * <li>{@link io.diskmorph.format.vpc.VpcImage}: mapping and guest writes.
 *     Crash safety of a new block: the footer is written at the block's
 *     new end and synced before the block's bitmap overwrites the old
 *     footer, so a footer always ends the file; the bitmap and data go
 *     next, and the BAT page naming the block is written only after they
 *     are durable (a cache dependency). A crash leaves either the old BAT
 *     entry (the block's space unused, reused by the next allocation since
 *     the free offset is derived from the BAT, as qemu derives it) or the
 *     new one over durable data. qemu itself writes the BAT entry before
 *     the data;</li>
 * <li>{@link io.diskmorph.format.vpc.VpcChecker}: diskmorph's check
 *     (qemu-img 7.2 has none) and its one repair, a footer from its good
 *     copy.</li>
 * </ul>
 * Differencing images are read with their parent as the backing image
 * (found through a W2ru locator's relative path, else the header's parent
 * name, else a W2ku locator's absolute path; its footer UUID must be the
 * header's parent UUID) and their sector bitmaps; they are not written.
 * qemu 7.2 opens them as dynamic images without their parent, reading
 * the parent's sectors as zeros.
 */
package io.diskmorph.format.vpc;
