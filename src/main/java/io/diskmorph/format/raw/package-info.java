/**
 * Raw images: no metadata, guest offset = host offset, holes of the file
 * read as zeros (QEMU's block/raw-format.c over block/file-posix.c). The
 * mapping answers with host offsets for holes too (zero, offset valid), which
 * is what lets in-place conversion keep a partly sparse cluster in place.
 */
package io.diskmorph.format.raw;
