package io.diskmorph.format.qcow2;

import io.diskmorph.image.CorruptImageException;
import io.diskmorph.storage.Storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * Persistent dirty bitmaps (qcow2.rst "Bitmaps extension", "Bitmap
 * directory"): the directory entries, read for {@code info} and for the
 * tables they own. qemu ignores the extension when the autoclear bit is
 * clear (a program without bitmap support wrote the image).
 */
final class BitmapDirectory {
    static final int FLAG_IN_USE = 1;
    static final int FLAG_AUTO = 2;
    /** qemu QCOW2_MAX_BITMAPS and QCOW2_MAX_BITMAP_DIRECTORY_SIZE. */
    static final int MAX_BITMAPS = 65535;
    static final long MAX_DIRECTORY_BYTES = 1024L * MAX_BITMAPS;
    private static final int ENTRY_HEADER = 24;
    /** Bits 9-55 of a bitmap table entry: the host offset of a bitmap data cluster. */
    static final long TABLE_ENTRY_OFFSET_MASK = 0x00ff_ffff_ffff_fe00L;

    /** One directory entry. */
    record Bitmap(String name, long tableOffset, int tableSize, int flags, int granularityBits) {
    }

    /** The extension fields. */
    record Extension(int count, long directorySize, long directoryOffset) {
    }

    private BitmapDirectory() {
    }

    /** The extension qemu honours, or null when absent or invalidated by a cleared autoclear bit. */
    static Extension extension(Qcow2Header h) throws CorruptImageException {
        byte[] d = h.extension(HeaderExtension.BITMAPS);
        if (d == null || (h.autoclear & Qcow2Header.AUTOCLEAR_BITMAPS) == 0) {
            return null;
        }
        ByteBuffer b = ByteBuffer.wrap(d);
        int count = b.getInt(0);
        long dirSize = b.getLong(8);
        long dirOffset = b.getLong(16);
        if (b.getInt(4) != 0) {
            throw new CorruptImageException("qcow2 bitmaps extension", -1, "reserved field is not zero");
        }
        if (count == 0 || Integer.compareUnsigned(count, MAX_BITMAPS) > 0) {
            throw new CorruptImageException("qcow2 bitmaps extension", -1, "invalid bitmap count "
                    + Integer.toUnsignedString(count));
        }
        if ((dirOffset & (h.clusterSize() - 1)) != 0 || dirOffset < 0) {
            throw new CorruptImageException("qcow2 bitmaps extension", -1, String.format(
                    "invalid bitmap directory offset 0x%x", dirOffset));
        }
        if (dirSize < 0 || dirSize > MAX_DIRECTORY_BYTES) {
            throw new CorruptImageException("qcow2 bitmaps extension", -1, "bitmap directory size "
                    + Long.toUnsignedString(dirSize) + " exceeds " + MAX_DIRECTORY_BYTES);
        }
        return new Extension(count, dirSize, dirOffset);
    }

    static List<Bitmap> read(Storage storage, Extension ext) throws IOException {
        ByteBuffer dir = storage.readBytes(ext.directoryOffset(), (int) ext.directorySize());
        List<Bitmap> out = new ArrayList<>();
        int off = 0;
        for (int i = 0; i < ext.count(); i++) {
            if (off + ENTRY_HEADER > dir.limit()) {
                throw new CorruptImageException("qcow2 bitmap directory", ext.directoryOffset() + off,
                        "entry " + i + " lies outside the directory");
            }
            long tableOffset = dir.getLong(off);
            int tableSize = dir.getInt(off + 8);
            int flags = dir.getInt(off + 12);
            int granularityBits = dir.get(off + 17) & 0xff;
            int nameSize = Short.toUnsignedInt(dir.getShort(off + 18));
            long extra = Integer.toUnsignedLong(dir.getInt(off + 20));
            long nameAt = off + ENTRY_HEADER + extra;
            if (nameAt + nameSize > dir.limit()) {
                throw new CorruptImageException("qcow2 bitmap directory", ext.directoryOffset() + off,
                        "entry " + i + " lies outside the directory");
            }
            byte[] name = new byte[nameSize];
            dir.get((int) nameAt, name);
            out.add(new Bitmap(new String(name, StandardCharsets.UTF_8), tableOffset, tableSize, flags,
                    granularityBits));
            off = (int) ((nameAt + nameSize + 7) & ~7L);
        }
        return out;
    }
}
