/**
 * The image model and the driver contract, which every format package
 * implements and the engines use without naming a format:
 * {@link io.diskmorph.image.ImageFormat} (a driver: probe, open, create;
 * capabilities as interfaces: {@link io.diskmorph.image.LayoutTarget} for
 * in-place targets and create-by-layout, {@link io.diskmorph.image.MeasurableFormat}),
 * {@link io.diskmorph.image.DiskImage} (an open image answering "where does
 * guest offset X live" like QEMU's block status, include/block/block_int-common.h
 * bdrv_co_block_status), {@link io.diskmorph.image.Mapping},
 * {@link io.diskmorph.image.LayoutBuilder} and {@link io.diskmorph.image.CommitRecord}
 * (the one code path for create and in-place targets, and the one header
 * switch), {@link io.diskmorph.image.FormatRegistry} (the list of drivers and
 * probing as qemu's block.c bdrv_probe_all), {@link io.diskmorph.image.Images}
 * (opening paths: locks, the interrupted-conversion guard, backing chains
 * resolved like QEMU), qemu-img's map/compare semantics
 * ({@link io.diskmorph.image.ChainMap}, {@link io.diskmorph.image.BlockStatus},
 * {@link io.diskmorph.image.ImageCompare}), and the exception hierarchy whose
 * types map to the CLI's exit codes ({@link io.diskmorph.image.ExitCodes}).
 */
package io.diskmorph.image;
