/**
 * The picture of an image's host file ({@code diskmorph layout}):
 * {@link io.diskmorph.layout.HostLayout} bins the file and counts, per bin,
 * the bytes of guest data (with their guest offsets), of each kind of
 * metadata the driver names ({@link io.diskmorph.image.MetadataRegions}),
 * of unreferenced space and of holes; {@link io.diskmorph.layout.LayoutSvg}
 * draws the bins as SVG (or an HTML page around it), areas in proportion
 * to bytes.
 */
package io.diskmorph.layout;
