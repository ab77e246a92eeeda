package io.diskmorph.image;

import io.diskmorph.storage.Storage;

import java.io.IOException;

/**
 * QEMU's block status of a chain at one guest offset, as qemu-img compare
 * asks for it (qemu 7.2, block/io.c: bdrv_block_status_above down to the
 * end of the chain, want_zero): the BDRV_BLOCK_* flags and how far the
 * answer reaches. Strict compare compares the flags as one number, so each
 * flag follows QEMU: OFFSET_VALID wherever QEMU's driver reports a host
 * offset (raw holes, zero clusters with an offset, but not compressed
 * clusters), ALLOCATED only for data or zeros of some layer, EOF when the
 * answer reaches the end of the image, which depends on how far QEMU's
 * drivers answer at once ({@link DiskImage#blockStatusLimit}, a run of one
 * kind with contiguous host offsets, one compressed cluster at a time).
 * BDRV_BLOCK_RECURSE (qcow2 with metadata preallocation) never shows: qemu
 * 7.2.9 and later clear it once they have asked the data file for holes.
 */
public record BlockStatus(int flags, long length) {
    public static final int DATA = 0x01;
    public static final int ZERO = 0x02;
    public static final int OFFSET_VALID = 0x04;
    public static final int ALLOCATED = 0x10;
    public static final int EOF = 0x20;

    public boolean allocated() {
        return (flags & ALLOCATED) != 0;
    }

    public boolean zero() {
        return (flags & ZERO) != 0;
    }

    /**
     * The status of {@code top}'s chain at {@code offset}, for at most
     * {@code bytes} (bdrv_co_common_block_status_above without a base): the
     * first layer that allocates the range answers; a backing image shorter
     * than the offset reads as allocated zeros.
     */
    public static BlockStatus of(DiskImage top, long offset, long bytes) throws IOException {
        BlockStatus s = layer(top, offset, bytes);
        if (s.length == 0 || s.allocated()) {
            return s;
        }
        long eof = (s.flags & EOF) != 0 ? offset + s.length : -1;
        int flags = s.flags;
        long length = s.length;
        for (DiskImage p = top.backing(); p != null; p = p.backing()) {
            BlockStatus b = layer(p, offset, length);
            if (b.length == 0) { // past this backing image's end
                flags = ZERO | ALLOCATED;
                break;
            }
            flags = b.flags;
            length = b.length;
            if (b.allocated()) {
                flags &= ~EOF; // the end of a lower layer is not the end of the image
                break;
            }
        }
        if (offset + length == eof) {
            flags |= EOF;
        }
        return new BlockStatus(flags, length);
    }

    /** One layer (bdrv_co_block_status): its driver's answer, merged as QEMU's driver merges it. */
    static BlockStatus layer(DiskImage img, long offset, long bytes) throws IOException {
        long total = img.virtualSize();
        if (offset >= total) {
            return new BlockStatus(EOF, 0);
        }
        long limit = Math.min(offset + Math.min(bytes, total - offset), img.blockStatusLimit(offset));
        Mapping m = img.mapping(offset, limit - offset);
        long length = m.length();
        // drivers may answer a run in pieces; QEMU's counts one kind with contiguous host offsets
        while (offset + length < limit) {
            Mapping next = img.mapping(offset + length, limit - offset - length);
            if (!continues(m, length, next)) {
                break;
            }
            length += next.length();
        }
        int flags;
        // instanceof tests, not a pattern switch (start-up cost, see ChainMap)
        if (m instanceof Mapping.Data d) {
            flags = DATA | OFFSET_VALID | ALLOCATED;
            if (img.mapReportsHostHolesAsZero(d)) {
                // qcow2 with metadata preallocation, VMDK flat extents (BDRV_BLOCK_RECURSE): QEMU asks the
                // data file whether the range is a hole
                Storage file = img.dataStorage(d);
                long host = d.hostOffset();
                long fileSize = file.size();
                long dataAt = host < fileSize ? file.nextData(host) : fileSize;
                if (dataAt >= fileSize) {
                    flags |= ZERO; // a hole up to the end of the file, or past it: the whole answer reads zeros
                } else if (dataAt > host) {
                    flags |= ZERO;
                    length = Math.min(length, dataAt - host);
                } else {
                    length = Math.min(length, file.nextHole(host) - host);
                }
            }
        } else if (m instanceof Mapping.Zero z) {
            flags = ZERO | ALLOCATED | (z.hasHostOffset() ? OFFSET_VALID : 0);
        } else if (m instanceof Mapping.Compressed) {
            flags = DATA | ALLOCATED;
        } else if (m instanceof Mapping.Unallocated u) {
            flags = u.hasHostOffset() ? OFFSET_VALID : 0;
            DiskImage backing = img.backing();
            if (backing == null || offset >= backing.virtualSize()) {
                flags |= ZERO; // reads zeros, without being allocated here
            }
        } else {
            throw new IllegalStateException("unknown mapping " + m);
        }
        if (offset + length == total) {
            flags |= EOF;
        }
        return new BlockStatus(flags, length);
    }

    /** Whether {@code next}, which follows {@code length} bytes of {@code first}, is the same run for QEMU. */
    private static boolean continues(Mapping first, long length, Mapping next) {
        if (first.getClass() != next.getClass() || first instanceof Mapping.Compressed) {
            return false;
        }
        if (first instanceof Mapping.Data a && next instanceof Mapping.Data b && a.file() != b.file()) {
            return false; // another file: its host offsets are another address space
        }
        long a = hostOffset(first);
        long b = hostOffset(next);
        return a < 0 ? b < 0 : b == a + length;
    }

    private static long hostOffset(Mapping m) {
        if (m instanceof Mapping.Data d) {
            return d.hostOffset();
        } else if (m instanceof Mapping.Zero z) {
            return z.hostOffset();
        } else if (m instanceof Mapping.Unallocated u) {
            return u.hostOffset();
        }
        return -1;
    }
}
