package io.diskmorph.format.qcow;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.util.HexFormat;

/** Byte-level helpers for the qcow tests: big-endian patches, digests. */
final class QcowFiles {
    private QcowFiles() {
    }

    static void put(Path file, long offset, int width, long value) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(width).order(ByteOrder.BIG_ENDIAN);
        switch (width) {
            case 1 -> b.put((byte) value);
            case 4 -> b.putInt((int) value);
            case 8 -> b.putLong(value);
            default -> throw new IllegalArgumentException("width " + width);
        }
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.WRITE)) {
            ch.write(b.flip(), offset);
        }
    }

    static long getU64(Path file, long offset) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(8).order(ByteOrder.BIG_ENDIAN);
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            ch.read(b, offset);
        }
        return b.getLong(0);
    }

    static String sha256(Path p) throws Exception {
        return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(Files.readAllBytes(p)));
    }
}
