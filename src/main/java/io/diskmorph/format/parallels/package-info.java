/**
 * Parallels images (also OpenVZ ploop's), following QEMU 7.2's
 * block/parallels.c and docs/interop/parallels.txt (what qemu-img reads,
 * writes, creates, maps and checks: the tests compare with qemu-img 7.2).
 *
 * <ul>
 * <li>{@link io.diskmorph.format.parallels.ParallelsFormat}: the driver
 *     (qemu's probe: either magic and version 2), create as qemu-img lays
 *     it out (cluster_size);</li>
 * <li>{@link io.diskmorph.format.parallels.ParallelsHeader}: the 64-byte
 *     header, both magics ("WithoutFreeSpace": BAT entries in sectors;
 *     "WithouFreSpacExt": in clusters), qemu's open checks and the bounds
 *     qemu skips;</li>
 * <li>{@link io.diskmorph.format.parallels.Bat}: the BAT, in pages of
 *     64 KiB through the shared metadata cache;</li>
 * <li>{@link io.diskmorph.format.parallels.ParallelsImage}: mapping, guest
 *     writes (new clusters at the end of the data), the inuse flag;</li>
 * <li>{@link io.diskmorph.format.parallels.ParallelsChecker}: qemu's check
 *     and repair with its messages and counters, and what it misses.</li>
 * </ul>
 */
package io.diskmorph.format.parallels;
