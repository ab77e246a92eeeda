package io.diskmorph.image;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.Arrays;

/**
 * Guest-content comparison with qemu-img compare's semantics: ranges both
 * chains know to be zero are skipped unread; a difference is reported at the
 * start of the first differing 512-byte sector; a size difference is fine
 * when the longer image's tail reads as zeros (unless strict).
 */
public final class ImageCompare {
    private static final int SECTOR = 512;
    private static final int CHUNK = 1 << 20;

    private ImageCompare() {
    }

    /** Outcome: {@code mismatchOffset} is -1 when identical; {@code message} is qemu-img's wording. */
    public record Result(boolean identical, long mismatchOffset, String message) {
    }

    /** qemu-img prints this before the result when the virtual sizes differ (non-strict). */
    public static final String SIZE_WARNING = "Warning: Image size mismatch!";

    public static Result compare(DiskImage a, DiskImage b, boolean strict) throws IOException {
        long sizeA = a.virtualSize();
        long sizeB = b.virtualSize();
        if (strict && sizeA != sizeB) {
            return new Result(false, Math.min(sizeA, sizeB), "Strict mode: Image size mismatch!");
        }
        long common = Math.min(sizeA, sizeB);
        ByteBuffer bufA = ByteBuffer.allocate(CHUNK);
        ByteBuffer bufB = ByteBuffer.allocate(CHUNK);
        long pos = 0;
        while (pos < common) {
            long max = Math.min(common - pos, CHUNK);
            MapEntry ea = ChainMap.entryAt(a, pos, max);
            MapEntry eb = ChainMap.entryAt(b, pos, max);
            long n = Math.min(ea.length(), eb.length());
            if (strict && (ea.present() != eb.present() || ea.zero() != eb.zero() || ea.data() != eb.data())) {
                return new Result(false, pos, "Strict mode: Offset " + pos + " block status mismatch!");
            }
            if (!(ea.zero() && eb.zero())) {
                bufA.clear().limit((int) n);
                bufB.clear().limit((int) n);
                if (ea.zero()) {
                    AbstractDiskImage.fillZero(bufA);
                } else {
                    a.read(bufA, pos);
                }
                if (eb.zero()) {
                    AbstractDiskImage.fillZero(bufB);
                } else {
                    b.read(bufB, pos);
                }
                int diff = Arrays.mismatch(bufA.array(), 0, (int) n, bufB.array(), 0, (int) n);
                if (diff >= 0) {
                    long at = pos + (diff / SECTOR) * (long) SECTOR;
                    return new Result(false, at, "Content mismatch at offset " + at + "!");
                }
            }
            pos += n;
        }
        if (sizeA != sizeB) {
            // qemu-img warns only once it reaches the longer image's tail
            DiskImage longer = sizeA > sizeB ? a : b;
            long at = firstNonZero(longer, common, longer.virtualSize(), bufA);
            if (at >= 0) {
                return new Result(false, at, SIZE_WARNING + "\nContent mismatch at offset " + at + "!");
            }
            return new Result(true, -1, SIZE_WARNING + "\nImages are identical.");
        }
        return new Result(true, -1, "Images are identical.");
    }

    /** First non-zero sector of [from, to) in guest content, or -1. */
    private static long firstNonZero(DiskImage img, long from, long to, ByteBuffer buf) throws IOException {
        long pos = from;
        while (pos < to) {
            MapEntry e = ChainMap.entryAt(img, pos, Math.min(to - pos, CHUNK));
            if (!e.zero()) {
                buf.clear().limit((int) e.length());
                img.read(buf, pos);
                byte[] arr = buf.array();
                for (int i = 0; i < e.length(); i++) {
                    if (arr[i] != 0) {
                        return pos + (i / SECTOR) * (long) SECTOR;
                    }
                }
            }
            pos += e.length();
        }
        return -1;
    }
}
