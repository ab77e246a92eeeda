package io.diskmorph.image;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.Arrays;

/**
 * Guest-content comparison with qemu-img compare's semantics (qemu 7.2,
 * img_compare): the images are walked by block status ({@link BlockStatus});
 * ranges both chains report as zeros are skipped unread, a range only one
 * chain allocates must read as zeros there; a difference is reported at the
 * first differing 512-byte sector; a size difference is fine when the longer
 * image's tail reads as zeros. Strict mode also requires equal sizes and, at
 * every offset the walk visits, the same block status flags (the whole
 * BDRV_BLOCK_* value, as qemu-img compares it).
 */
public final class ImageCompare {
    private static final int SECTOR = 512;
    /** qemu-img's IO_BUF_SIZE: the most it reads of each image at once. */
    private static final int CHUNK = 2 << 20;

    private ImageCompare() {
    }

    /** Outcome: {@code mismatchOffset} is -1 when identical; {@code message} is qemu-img's wording. */
    public record Result(boolean identical, long mismatchOffset, String message) {
    }

    /**
     * A comparison that could not finish, with qemu-img compare's exit code:
     * 3 when asking an image's allocation failed, 4 when reading its guest
     * data failed. {@code image} is 1 or 2, the argument's position.
     */
    public static final class Failure extends ImageException {
        private final int code;
        private final int image;

        Failure(int code, int image, String message, IOException cause) {
            super(message, cause);
            this.code = code;
            this.image = image;
        }

        @Override
        public int exitCode() {
            return code;
        }

        public int image() {
            return image;
        }
    }

    /** qemu-img prints this before the result when the virtual sizes differ (non-strict). */
    public static final String SIZE_WARNING = "Warning: Image size mismatch!";

    public static Result compare(DiskImage a, DiskImage b, boolean strict) throws IOException {
        return compare(a, b, strict, (done, total) -> {
        });
    }

    /** Receives the guest bytes walked so far of the longer image's size (compare -p). */
    @FunctionalInterface
    public interface Progress {
        void update(long done, long total);
    }

    /** Compares as {@link #compare(DiskImage, DiskImage, boolean)}, telling {@code progress} as it walks. */
    public static Result compare(DiskImage a, DiskImage b, boolean strict, Progress progress) throws IOException {
        long sizeA = a.virtualSize();
        long sizeB = b.virtualSize();
        if (strict && sizeA != sizeB) {
            return new Result(false, Math.min(sizeA, sizeB), "Strict mode: Image size mismatch!");
        }
        long common = Math.min(sizeA, sizeB);
        long total = Math.max(sizeA, sizeB);
        progress.update(0, total);
        ByteBuffer bufA = ByteBuffer.allocate(CHUNK);
        ByteBuffer bufB = ByteBuffer.allocate(CHUNK);
        long pos = 0;
        while (pos < common) {
            // each image is asked up to its own end, as qemu-img does: that decides its EOF flag
            BlockStatus sa = status(a, 1, pos, sizeA - pos);
            BlockStatus sb = status(b, 2, pos, sizeB - pos);
            long n = Math.min(sa.length(), sb.length());
            if (strict && sa.flags() != sb.flags()) {
                return new Result(false, pos, "Strict mode: Offset " + pos + " block status mismatch!");
            }
            if (sa.zero() && sb.zero()) {
                // both read zeros: nothing to read
            } else if (sa.allocated() == sb.allocated()) {
                if (sa.allocated()) {
                    n = Math.min(n, CHUNK);
                    bufA.clear().limit((int) n);
                    bufB.clear().limit((int) n);
                    read(a, 1, bufA, pos);
                    read(b, 2, bufB, pos);
                    int diff = Arrays.mismatch(bufA.array(), 0, (int) n, bufB.array(), 0, (int) n);
                    if (diff >= 0) {
                        long at = pos + (diff / SECTOR) * (long) SECTOR;
                        return new Result(false, at, "Content mismatch at offset " + at + "!");
                    }
                }
            } else {
                // allocated in one chain only: it must read zeros there
                n = Math.min(n, CHUNK);
                long at = sa.allocated() ? firstNonZero(a, 1, pos, n, bufA) : firstNonZero(b, 2, pos, n, bufA);
                if (at >= 0) {
                    return new Result(false, at, "Content mismatch at offset " + at + "!");
                }
            }
            pos += n;
            progress.update(pos, total);
        }
        if (sizeA != sizeB) {
            // qemu-img warns only once it reaches the longer image's tail
            DiskImage longer = sizeA > sizeB ? a : b;
            int which = sizeA > sizeB ? 1 : 2;
            long end = longer.virtualSize();
            while (pos < end) {
                BlockStatus s = status(longer, which, pos, end - pos);
                long n = s.length();
                if (s.allocated() && !s.zero()) {
                    n = Math.min(n, CHUNK);
                    long at = firstNonZero(longer, which, pos, n, bufA);
                    if (at >= 0) {
                        return new Result(false, at, SIZE_WARNING + "\nContent mismatch at offset " + at + "!");
                    }
                }
                pos += n;
                progress.update(pos, total);
            }
            return new Result(true, -1, SIZE_WARNING + "\nImages are identical.");
        }
        return new Result(true, -1, "Images are identical.");
    }

    /** First sector of guest content in [from, from + n) (n at most CHUNK) holding a non-zero byte, or -1. */
    private static long firstNonZero(DiskImage img, int which, long from, long n, ByteBuffer buf)
            throws IOException {
        buf.clear().limit((int) n);
        read(img, which, buf, from);
        byte[] arr = buf.array();
        for (int i = 0; i < n; i++) {
            if (arr[i] != 0) {
                return from + (i / SECTOR) * (long) SECTOR;
            }
        }
        return -1;
    }

    private static BlockStatus status(DiskImage img, int which, long offset, long length) throws IOException {
        try {
            return BlockStatus.of(img, offset, length);
        } catch (IOException e) {
            throw new Failure(ExitCodes.COMPARE_ALLOCATION_FAILED, which, "allocation test failed at offset " + offset
                    + ": " + e.getMessage(), e);
        }
    }

    private static void read(DiskImage img, int which, ByteBuffer buf, long offset) throws IOException {
        try {
            img.read(buf, offset);
        } catch (IOException e) {
            throw new Failure(ExitCodes.COMPARE_READ_FAILED, which, "error while reading offset " + offset + ": " + e.getMessage(), e);
        }
    }
}
