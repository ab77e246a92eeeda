/**
 * VMware's VMDK: descriptor files (text: CID, parentCID,
 * createType, extent lines, the disk database) and the extents they name:
 * flat (monolithicFlat, twoGbMaxExtentFlat, ESXi vmfs NAME-flat.vmdk),
 * hosted sparse "KDMV" v1-v3 (monolithicSparse with its embedded
 * descriptor, twoGbMaxExtentSparse, streamOptimized's deflated grains behind
 * markers with the footer at the end), ESX sparse "COWD" and seSparse
 * (vmfsSparse / seSparse snapshots), ZERO; a snapshot's parent through
 * parentFileNameHint, read like a backing file. A VMDK that is one file
 * (monolithicSparse, streamOptimized) may be the source of an in-place
 * conversion, which only reads it; a descriptor whose data lives in extent
 * files says why not (VmdkImage.notInPlaceSource), except one flat extent
 * at offset 0 of a file beside it, which is the raw disk as it is
 * (VmdkImage.flatDataFile: switched to raw, qcow2 or QED by renames in
 * convert/FlatPairSwitch; and VmdkFormat.flatDescriptor describes a raw
 * file as monolithicFlat for the way back). A monolithicSparse file
 * becomes raw in place by a roll-forward ({@link
 * io.diskmorph.format.vmdk.VmdkRelocation}: its tables moved past the end,
 * then its grains remapped as the roll-forward moves them home).
 *
 * <p>Writes: guest writes to flat extents (in place) and hosted sparse
 * extents (version 1 and 2: new grains at the end of the extent file, the
 * grain durable before its grain table entries, tables made where the
 * directory has none, zeroed-grain entries), a new CID on the first write
 * as qemu does; create with qemu-img's options and layout in every
 * subformat qemu writes; streamOptimized written front to back in VMware's
 * stream layout (copy conversion); the target of an in-place conversion
 * as monolithicSparse ({@link io.diskmorph.format.vmdk.VmdkLayoutBuilder}:
 * 64 KiB grains, so aligned data stays). ESX sparse, seSparse, compressed and
 * version 3 extents, ZERO and RDONLY extents are not written.
 *
 * <p>Follows QEMU 7.2's block/vmdk.c (what qemu-img reads, maps, reports and
 * checks; the tests compare with qemu-img 7.2, whose oracle this is), the
 * VMDK 1.1 technote ("Virtual Disk Format 1.1") and libyal's libvmdk
 * documentation ("VMware Virtual Disk Format (VMDK)"). Where qemu silently
 * misreads a descriptor (it drops RDONLY, NOACCESS, ZERO and unknown extent
 * lines), this driver reads RDONLY and ZERO extents and refuses the rest.
 *
 * <ul>
 * <li>{@link io.diskmorph.format.vmdk.VmdkFormat}: the driver (qemu's probe
 *     rule, its create options);</li>
 * <li>{@link io.diskmorph.format.vmdk.VmdkCreator}: create, as qemu-img
 *     7.2 lays the files out;</li>
 * <li>{@link io.diskmorph.format.vmdk.StreamOptimizedImage}: a new
 *     streamOptimized file, written front to back;</li>
 * <li>{@link io.diskmorph.format.vmdk.VmdkImage}: an open disk, its extents
 *     and their files (opened through the context, like backing files),
 *     mapping, reads, info, the parent CID test;</li>
 * <li>{@link io.diskmorph.format.vmdk.Descriptor}: the descriptor parser,
 *     bounded;</li>
 * <li>{@link io.diskmorph.format.vmdk.SparseHeader},
 *     {@link io.diskmorph.format.vmdk.SparseExtent},
 *     {@link io.diskmorph.format.vmdk.TableCache}: sparse extents, grain
 *     tables through the shared metadata cache (image.cache), written
 *     back after the grains they name;</li>
 * <li>{@link io.diskmorph.format.vmdk.FlatExtent},
 *     {@link io.diskmorph.format.vmdk.ZeroExtent}: the other extents;</li>
 * <li>{@link io.diskmorph.format.vmdk.VmdkChecker}: qemu's check and what it
 *     misses.</li>
 * </ul>
 */
package io.diskmorph.format.vmdk;
