package io.diskmorph.format.vhdx;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;

/**
 * A GUID as VHDX stores it: 16 bytes, the first three fields little endian
 * (Microsoft's layout), the last eight as written. Kept as the on-disk bytes
 * so that comparing two is comparing arrays.
 */
record Guid(byte[] bytes) {
    static final Guid ZERO = new Guid(new byte[16]);

    /** Parses the usual text form ("2DC27766-F623-4200-9D64-115E9BFD4A08") into the on-disk bytes. */
    static Guid of(String text) {
        String hex = text.replace("-", "");
        ByteBuffer b = ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN);
        b.putInt((int) Long.parseLong(hex.substring(0, 8), 16));
        b.putShort((short) Integer.parseInt(hex.substring(8, 12), 16));
        b.putShort((short) Integer.parseInt(hex.substring(12, 16), 16));
        for (int i = 16; i < 32; i += 2) {
            b.put((byte) Integer.parseInt(hex.substring(i, i + 2), 16));
        }
        return new Guid(b.array());
    }

    /** The 16 bytes at {@code at} of {@code b}. */
    static Guid read(ByteBuffer b, int at) {
        byte[] g = new byte[16];
        b.get(at, g);
        return new Guid(g);
    }

    boolean isZero() {
        return equals(ZERO);
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof Guid g && Arrays.equals(bytes, g.bytes);
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(bytes);
    }

    @Override
    public String toString() {
        ByteBuffer b = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
        StringBuilder s = new StringBuilder(String.format("%08x-%04x-%04x-", b.getInt(0), b.getShort(4) & 0xffff,
                b.getShort(6) & 0xffff));
        for (int i = 8; i < 16; i++) {
            s.append(String.format("%02x", bytes[i]));
            if (i == 9) {
                s.append('-');
            }
        }
        return s.toString();
    }
}
