package io.diskmorph.fuzz;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.TreeMap;

/**
 * Builds QED files field by field, straight from docs/interop/qed_spec.rst
 * and independent of the driver under test, so a test can plant exactly one
 * bad value at a known offset. Every field is public and unchecked: that is
 * the point. {@link #standard()} is a small valid image (qemu-img check
 * clean, see HostileImageTest) to start from.
 */
final class QedBuilder {
    static final int MAGIC = 'Q' | 'E' << 8 | 'D' << 16;
    static final long F_BACKING_FILE = 0x1;
    static final long F_NEED_CHECK = 0x2;
    static final long F_BACKING_FORMAT_NO_PROBE = 0x4;

    // header (qed_spec.rst "Header"), little-endian at offset 0
    long clusterSize = 4096;
    long tableSize = 2;
    long headerSize = 1;
    long features;
    long compatFeatures;
    long autoclearFeatures;
    long l1Offset = 4096;
    long imageSize = 1 << 20;
    long backingNameOffset;
    long backingNameSize;
    /** Bytes written at {@link #backingNameOffset} (may differ from what the size field says). */
    byte[] backingName;

    /** L1 index -> entry. */
    final Map<Long, Long> l1 = new TreeMap<>();
    /** L2 table offset -> (index -> entry). */
    final Map<Long, Map<Long, Long>> l2 = new TreeMap<>();
    /** Host offset -> bytes (data clusters, or anything else to plant). */
    final Map<Long, byte[]> raw = new TreeMap<>();
    /** File length; -1: just past the last thing written. */
    long fileLength = -1;

    /** Header offsets of the fields, for naming them in expectations. */
    static final int OFF_CLUSTER_SIZE = 4;
    static final int OFF_TABLE_SIZE = 8;
    static final int OFF_HEADER_SIZE = 12;
    static final int OFF_FEATURES = 16;
    static final int OFF_L1 = 40;
    static final int OFF_IMAGE_SIZE = 48;
    static final int OFF_BACKING_NAME_OFFSET = 56;

    /**
     * 4 KiB clusters, 2-cluster tables, 1 MiB disk: L1 at 0x1000, one L2 at
     * 0x3000, guest clusters 0 and 1 at 0x5000 and 0x6000 (patterns 0x11,
     * 0x22), guest cluster 2 a zero cluster. 28 KiB.
     */
    static QedBuilder standard() {
        QedBuilder b = new QedBuilder();
        b.l1.put(0L, 0x3000L);
        b.l2.put(0x3000L, new TreeMap<>(Map.of(0L, 0x5000L, 1L, 0x6000L, 2L, 1L)));
        b.raw.put(0x5000L, fill(4096, 0x11));
        b.raw.put(0x6000L, fill(4096, 0x22));
        return b;
    }

    long tableBytes() {
        return clusterSize * tableSize;
    }

    /** File offset of L1 entry {@code index}. */
    long l1EntryOffset(long index) {
        return l1Offset + 8 * index;
    }

    QedBuilder backing(String name, long nameOffset) {
        features |= F_BACKING_FILE;
        backingName = name.getBytes(StandardCharsets.UTF_8);
        backingNameOffset = nameOffset;
        backingNameSize = backingName.length;
        return this;
    }

    byte[] bytes() {
        long length = fileLength;
        if (length < 0) {
            length = Math.max(64, l1Offset + tableBytes());
            for (long t : l2.keySet()) {
                length = Math.max(length, t + tableBytes());
            }
            for (Map.Entry<Long, byte[]> e : raw.entrySet()) {
                length = Math.max(length, e.getKey() + e.getValue().length);
            }
            if (backingName != null) {
                length = Math.max(length, backingNameOffset + backingName.length);
            }
        }
        ByteBuffer f = ByteBuffer.allocate(Math.toIntExact(Math.max(length, 64))).order(ByteOrder.LITTLE_ENDIAN);
        f.putInt(0, MAGIC).putInt(4, (int) clusterSize).putInt(8, (int) tableSize).putInt(12, (int) headerSize)
                .putLong(16, features).putLong(24, compatFeatures).putLong(32, autoclearFeatures)
                .putLong(40, l1Offset).putLong(48, imageSize)
                .putInt(56, (int) backingNameOffset).putInt(60, (int) backingNameSize);
        if (backingName != null) {
            putIfInside(f, backingNameOffset, backingName);
        }
        raw.forEach((at, b) -> putIfInside(f, at, b));
        ByteBuffer le = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
        l1.forEach((i, v) -> putIfInside(f, l1EntryOffset(i), le.putLong(0, v).array().clone()));
        l2.forEach((t, entries) -> entries.forEach((i, v) -> putIfInside(f, t + 8 * i, le.putLong(0, v).array().clone())));
        byte[] out = new byte[Math.toIntExact(length)];
        f.get(0, out, 0, (int) Math.min(out.length, f.capacity()));
        return out;
    }

    private static void putIfInside(ByteBuffer f, long at, byte[] b) {
        if (at >= 0 && at <= f.capacity() - b.length) {
            f.put(Math.toIntExact(at), b);
        }
    }

    static byte[] fill(int n, int value) {
        byte[] b = new byte[n];
        java.util.Arrays.fill(b, (byte) value);
        return b;
    }
}
