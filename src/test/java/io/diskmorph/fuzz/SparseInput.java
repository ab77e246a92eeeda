package io.diskmorph.fuzz;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * A fuzz input that describes a file of mostly zeros: records of a u32
 * offset, a u16 length (both little endian) and that many bytes, each
 * written at its offset. VHDX files are MiBs of zeros around a few KiB of
 * headers, tables and data (1 MiB header section, 1 MiB-aligned regions and
 * blocks): as a flat input the fuzzer would mutate zeros. make-seeds.sh
 * writes its VHDX seeds this way (the non-zero 512-byte sectors of
 * qemu-made files).
 */
final class SparseInput {
    /** Expanded files end here at most: records past it are dropped. */
    static final int MAX_FILE = 16 << 20;

    private SparseInput() {
    }

    static byte[] expand(byte[] input) {
        ByteBuffer in = ByteBuffer.wrap(input).order(ByteOrder.LITTLE_ENDIAN);
        long end = 0;
        while (in.remaining() >= 6) {
            long at = Integer.toUnsignedLong(in.getInt());
            int n = Math.min(in.getShort() & 0xffff, in.remaining());
            if (at + n <= MAX_FILE) {
                end = Math.max(end, at + n);
            }
            in.position(in.position() + n);
        }
        byte[] file = new byte[(int) end];
        in.rewind();
        while (in.remaining() >= 6) {
            long at = Integer.toUnsignedLong(in.getInt());
            int n = Math.min(in.getShort() & 0xffff, in.remaining());
            if (at + n <= MAX_FILE) {
                in.get(in.position(), file, (int) at, n);
            }
            in.position(in.position() + n);
        }
        return file;
    }
}
