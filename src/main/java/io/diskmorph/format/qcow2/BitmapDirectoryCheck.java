package io.diskmorph.format.qcow2;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;

/**
 * check's part for persistent bitmaps (qemu's qcow2_check_bitmaps_refcounts,
 * block/qcow2-bitmap.c): the bitmap directory, each bitmap table and the
 * clusters they point to are counted as references. A directory or table
 * qemu would not load fails the check with a corruption (qemu: -EINVAL).
 */
final class BitmapDirectoryCheck {
    /** Bitmap table entries (qcow2-bitmap.c BME_TABLE_ENTRY_*) and directory entry limits. */
    private static final long BME_RESERVED = 0xff00_0000_0000_01feL;
    private static final long BME_ALL_ONES = 1;
    private static final int BME_MAX_TABLE_SIZE = 0x800_0000;
    private static final long BME_MAX_PHYS_SIZE = 0x2000_0000L;
    private static final int BME_MAX_NAME_SIZE = 1023;
    private static final int ENTRY_HEADER = 24;

    private BitmapDirectoryCheck() {
    }

    /** Counts the references of the bitmaps extension qemu honours, if any. */
    static void countReferences(CheckContext ctx) throws IOException, CheckFailed {
        BitmapDirectory.Extension ext = BitmapDirectory.extension(ctx.header);
        if (ext == null) {
            return;
        }
        long clusterSize = ctx.clusterSize;
        ctx.inc(ext.directoryOffset(), ext.directorySize());
        List<long[]> tables = bitmapTables(ctx, ext);
        if (tables == null) {
            ctx.res.corruptions++;
            throw new CheckFailed(CheckFailed.EINVAL);
        }
        for (long[] t : tables) {
            long offset = t[0];
            long size = t[1];
            ctx.inc(offset, size * 8);
            if (!CheckContext.readable(offset, size * 8)) {
                ctx.res.corruptions++;
                throw new CheckFailed(CheckFailed.EIO);
            }
            // qemu loads (and validates) the whole table before counting its clusters
            for (int pass = 0; pass < 2; pass++) {
                for (long first = 0; first < size; first += CheckContext.PAGE_ENTRIES) {
                    int n = (int) Math.min(CheckContext.PAGE_ENTRIES, size - first);
                    long[] entries = ctx.readPage(offset + first * 8, n);
                    for (int k = 0; k < n; k++) {
                        long e = entries[k];
                        long data = e & BitmapDirectory.TABLE_ENTRY_OFFSET_MASK;
                        if (pass == 0) {
                            if ((e & BME_RESERVED) != 0 || data != 0 && ((e & BME_ALL_ONES) != 0
                                    || (data & (clusterSize - 1)) != 0)) {
                                ctx.res.corruptions++;
                                throw new CheckFailed(CheckFailed.EINVAL);
                            }
                        } else if (data != 0) {
                            ctx.inc(data, clusterSize);
                        }
                    }
                }
            }
        }
    }

    /** bitmap_list_load with check_dir_entry: (table offset, table size) per bitmap, null when qemu refuses. */
    private static List<long[]> bitmapTables(CheckContext ctx, BitmapDirectory.Extension ext) throws IOException {
        long size = ext.directorySize();
        if (size == 0 || size > BitmapDirectory.MAX_DIRECTORY_BYTES) {
            return null;
        }
        long clusterSize = ctx.clusterSize;
        // past the end of the file the directory reads as zeros, and an all-zero entry is invalid (table
        // size 0): what lies in the file and one entry header beyond is all that can matter
        long inFile = Math.max(0, ctx.fileLength - ext.directoryOffset());
        ByteBuffer dir = ctx.storage.readBytes(ext.directoryOffset(), (int) Math.min(size, inFile + ENTRY_HEADER));
        List<long[]> out = new ArrayList<>();
        long virtual = ctx.header.size & ~511L;
        int at = 0;
        while (at < size) {
            if (at + ENTRY_HEADER > size || out.size() + 1 > Integer.toUnsignedLong(ext.count())
                    || at + ENTRY_HEADER > dir.limit()) {
                return null;
            }
            long tableOffset = dir.getLong(at);
            long tableSize = Integer.toUnsignedLong(dir.getInt(at + 8));
            int flags = dir.getInt(at + 12);
            int type = dir.get(at + 16) & 0xff;
            int granularity = dir.get(at + 17) & 0xff;
            int nameSize = Short.toUnsignedInt(dir.getShort(at + 18));
            long extra = Integer.toUnsignedLong(dir.getInt(at + 20));
            long entrySize = (ENTRY_HEADER + nameSize + extra + 7) & ~7L;
            if (at + entrySize > size || extra != 0) {
                return null;
            }
            long phys = tableSize * clusterSize;
            boolean bad = tableSize == 0 || tableOffset == 0 || (tableOffset & (clusterSize - 1)) != 0
                    || tableSize > BME_MAX_TABLE_SIZE || granularity > 31 || granularity < 9
                    || (flags & ~(BitmapDirectory.FLAG_IN_USE | BitmapDirectory.FLAG_AUTO)) != 0
                    || nameSize > BME_MAX_NAME_SIZE || type != 1 || phys > BME_MAX_PHYS_SIZE
                    || (flags & BitmapDirectory.FLAG_IN_USE) == 0
                    && Long.compareUnsigned(virtual, (phys * 8) << granularity) > 0;
            if (bad) {
                return null;
            }
            out.add(new long[]{tableOffset, tableSize});
            at += (int) entrySize;
        }
        return out.size() == Integer.toUnsignedLong(ext.count()) ? out : null;
    }
}
