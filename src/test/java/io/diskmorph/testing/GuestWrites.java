package io.diskmorph.testing;

import io.diskmorph.image.DiskImage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** Random guest writes through a driver's own write path, mirrored into a byte array. */
public final class GuestWrites {
    private GuestWrites() {
    }

    /**
     * {@code ops} random operations on {@code img}, each also applied to
     * {@code mirror} (the guest content before): writes (a third
     * cluster-aligned, a third sector-aligned, a third anywhere; some half
     * zeros, which are still data), zero writes with and without unmap,
     * flushes; then a write and a zero write that end at the last byte of
     * the disk.
     */
    public static void scribble(DiskImage img, byte[] mirror, Random r, int ops) throws IOException {
        long size = img.virtualSize();
        assertEquals(mirror.length, size, "the mirror is as large as the disk");
        long unit = img.clusterSize() > 0 ? img.clusterSize() : 65536;
        for (int i = 0; i < ops; i++) {
            long off = switch (r.nextInt(3)) {
                case 0 -> r.nextLong(size / unit + 1) * unit;
                case 1 -> r.nextLong(size / 512) * 512;
                default -> r.nextLong(size);
            };
            off = Math.min(off, size - 1);
            long maxLen = Math.min(size - off, r.nextInt(4) == 0 ? 3 * unit + 5000 : 70_000);
            int len = (int) (r.nextLong(maxLen) + 1);
            int kind = r.nextInt(10);
            if (kind < 6) {
                byte[] data = new byte[len];
                r.nextBytes(data);
                if (r.nextBoolean()) {
                    Arrays.fill(data, 0, len / 2, (byte) 0);
                }
                write(img, mirror, data, off);
            } else if (kind < 9) {
                img.writeZeroes(off, len, r.nextBoolean());
                Arrays.fill(mirror, (int) off, (int) off + len, (byte) 0);
            } else {
                img.flush();
            }
        }
        byte[] tail = new byte[(int) Math.min(5000, size)];
        r.nextBytes(tail);
        write(img, mirror, tail, size - tail.length);
        long zeros = Math.min(700, size);
        img.writeZeroes(size - zeros, zeros - zeros / 2, true);
        Arrays.fill(mirror, (int) (size - zeros), (int) (size - zeros / 2), (byte) 0);
    }

    private static void write(DiskImage img, byte[] mirror, byte[] data, long off) throws IOException {
        img.write(ByteBuffer.wrap(data), off);
        System.arraycopy(data, 0, mirror, (int) off, data.length);
    }
}
