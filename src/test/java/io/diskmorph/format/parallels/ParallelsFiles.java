package io.diskmorph.format.parallels;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.util.HexFormat;

/** Byte-level edits of Parallels files for the tests (header fields, BAT entries). */
final class ParallelsFiles {
    static final int INUSE = 0x746F6E59;

    private ParallelsFiles() {
    }

    static void putU32(Path f, long offset, long value) throws IOException {
        write(f, offset, ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt(0, (int) value).array());
    }

    static void putU64(Path f, long offset, long value) throws IOException {
        write(f, offset, ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(0, value).array());
    }

    static long getU32(Path f, long offset) throws IOException {
        try (FileChannel ch = FileChannel.open(f, StandardOpenOption.READ)) {
            ByteBuffer b = ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN);
            ch.read(b, offset);
            return Integer.toUnsignedLong(b.getInt(0));
        }
    }

    /** BAT entry {@code index}: at 64 + 4 x index. */
    static void putEntry(Path f, long index, long value) throws IOException {
        putU32(f, 64 + 4 * index, value);
    }

    static void write(Path f, long offset, byte[] bytes) throws IOException {
        try (FileChannel ch = FileChannel.open(f, StandardOpenOption.WRITE)) {
            ch.write(ByteBuffer.wrap(bytes), offset);
        }
    }

    static String sha256(Path f) throws Exception {
        return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(Files.readAllBytes(f)));
    }
}
