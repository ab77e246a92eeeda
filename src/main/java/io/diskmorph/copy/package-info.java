/**
 * Copy conversion, following qemu-img convert (qemu-img.c convert_do_copy):
 * {@link io.diskmorph.copy.CopyEngine} (a reader thread, compression workers
 * and a writer that keeps guest order), {@link io.diskmorph.copy.SourceWalker}
 * (the source chain's mapping: holes and zeros are never read),
 * {@link io.diskmorph.copy.ZeroScan} (-S), {@link io.diskmorph.copy.MappedSource}
 * (read-only mappings of the source), {@link io.diskmorph.copy.PartFile}
 * (DST.part-PID, renamed when complete) and {@link io.diskmorph.copy.Measure}
 * (qemu-img measure, and what an in-place conversion would need).
 */
package io.diskmorph.copy;
