package io.diskmorph.format.qed;

import io.diskmorph.image.DiskImage;
import io.diskmorph.image.Images;
import io.diskmorph.image.OpenOptions;
import io.diskmorph.testing.Qemu;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Test helpers that read and patch QED files byte by byte, straight from the
 * spec (independent of the driver under test), and compare guest bytes.
 */
final class QedFiles {
    private QedFiles() {
    }

    /** The parts of a QED file a test needs to plant damage at computed offsets. */
    record Layout(long clusterSize, long tableSize, long headerSize, long l1Offset, long imageSize) {
        long tableBytes() {
            return clusterSize * tableSize;
        }

        long entries() {
            return tableBytes() / 8;
        }

        long l1EntryOffset(long index) {
            return l1Offset + 8 * index;
        }
    }

    static Layout layout(Path qed) throws IOException {
        ByteBuffer h = read(qed, 0, 64);
        return new Layout(Integer.toUnsignedLong(h.getInt(4)), Integer.toUnsignedLong(h.getInt(8)),
                Integer.toUnsignedLong(h.getInt(12)), h.getLong(40), h.getLong(48));
    }

    static ByteBuffer read(Path f, long offset, int length) throws IOException {
        try (FileChannel ch = FileChannel.open(f, StandardOpenOption.READ)) {
            ByteBuffer b = ByteBuffer.allocate(length).order(ByteOrder.LITTLE_ENDIAN);
            while (b.hasRemaining() && ch.read(b, offset + b.position()) >= 0) {
                // keep reading
            }
            return b.clear();
        }
    }

    static long u64(Path f, long offset) throws IOException {
        return read(f, offset, 8).getLong(0);
    }

    static void putU64(Path f, long offset, long value) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(0, value);
        write(f, offset, b);
    }

    static void putU32(Path f, long offset, long value) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt(0, (int) value);
        write(f, offset, b);
    }

    static void write(Path f, long offset, ByteBuffer b) throws IOException {
        try (FileChannel ch = FileChannel.open(f, StandardOpenOption.WRITE)) {
            while (b.hasRemaining()) {
                ch.write(b, offset + b.position());
            }
        }
    }

    /** L2 table offset of an L1 entry. */
    static long l2Of(Path qed, long l1Index) throws IOException {
        return u64(qed, layout(qed).l1EntryOffset(l1Index));
    }

    static String digest(Path f) throws IOException {
        try {
            MessageDigest md = MessageDigest.getInstance("SHA-256");
            md.update(Files.readAllBytes(f));
            return HexFormat.of().formatHex(md.digest()) + ":" + Files.size(f);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    /**
     * Guest bytes of {@code image} read by diskmorph equal qemu's raw
     * conversion: every range qemu-img map reports as data is compared in
     * full, every zero range is sampled at both ends (the maps themselves are
     * compared separately).
     */
    static void assertSameGuestBytes(Path image, String format, Path qemuRaw) throws IOException {
        List<Qemu.MapLine> map = Qemu.map(image, format);
        try (DiskImage img = Images.open(image, OpenOptions.forReading().withFormat(format))) {
            for (Qemu.MapLine m : map) {
                if (m.data()) {
                    for (long pos = m.start(); pos < m.start() + m.length(); pos += 1 << 20) {
                        compare(img, qemuRaw, pos, (int) Math.min(1 << 20, m.start() + m.length() - pos));
                    }
                } else {
                    int n = (int) Math.min(65536, m.length());
                    compare(img, qemuRaw, m.start(), n);
                    compare(img, qemuRaw, m.start() + m.length() - n, n);
                    assertTrue(isZero(readGuest(img, m.start() + m.length() - n, n)), "zero range reads zeros");
                }
            }
        }
    }

    private static void compare(DiskImage img, Path raw, long pos, int n) throws IOException {
        assertArrayEquals(read(raw, pos, n).array(), readGuest(img, pos, n).array(),
                "guest bytes at " + pos + "+" + n);
    }

    static ByteBuffer readGuest(DiskImage img, long pos, int n) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(n);
        img.read(b, pos);
        return b.flip();
    }

    static boolean isZero(ByteBuffer b) {
        for (int i = b.position(); i < b.limit(); i++) {
            if (b.get(i) != 0) {
                return false;
            }
        }
        return true;
    }

    /** Our map JSON equals qemu-img map's, entry by entry. */
    static void assertSameMap(Path image, String format) {
        assertEquals(Qemu.map(image, format), io.diskmorph.testing.Dm.map(image, format), "map of " + image);
    }
}
