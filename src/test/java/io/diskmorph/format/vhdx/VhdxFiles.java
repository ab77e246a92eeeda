package io.diskmorph.format.vhdx;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.zip.CRC32C;

/**
 * Reads and edits VHDX files in tests, independently of the driver (its own
 * offsets and field layout from [MS-VHDX]): the BAT and metadata regions
 * through region table 1, BAT entries, metadata items, header and region
 * table fields with their CRC-32C recomputed.
 */
final class VhdxFiles {
    static final long MIB = 1L << 20;
    static final long HEADER1 = 64 * 1024;
    static final long HEADER2 = 128 * 1024;
    static final long REGION1 = 192 * 1024;
    static final long REGION2 = 256 * 1024;
    static final String BAT_GUID = "2dc27766-f623-4200-9d64-115e9bfd4a08";
    static final String METADATA_GUID = "8b7ca206-4790-4b9a-b8fe-575f050f886e";
    static final String LOGICAL_SECTOR_GUID = "8141bf1d-a96f-4709-ba47-f233a8faab5f";
    static final String FILE_PARAMETERS_GUID = "caa16737-fa36-4d43-b3b6-33f0aa44e76b";
    static final String VIRTUAL_SIZE_GUID = "2fa54224-cd1b-4876-b211-5dbed83bf4b8";
    static final String PARENT_LOCATOR_GUID = "a8d35f2d-b30b-454d-abf7-d3d84834ab0c";

    private VhdxFiles() {
    }

    static ByteBuffer read(Path f, long at, int n) throws IOException {
        try (FileChannel c = FileChannel.open(f)) {
            ByteBuffer b = ByteBuffer.allocate(n).order(ByteOrder.LITTLE_ENDIAN);
            while (b.hasRemaining() && c.read(b, at + b.position()) > 0) {
                // until full or end of file
            }
            return b.clear();
        }
    }

    static void write(Path f, long at, ByteBuffer b) throws IOException {
        try (FileChannel c = FileChannel.open(f, StandardOpenOption.WRITE)) {
            while (b.hasRemaining()) {
                c.write(b, at + b.position());
            }
        }
    }

    static void putLong(Path f, long at, long v) throws IOException {
        write(f, at, ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(0, v));
    }

    static void putInt(Path f, long at, int v) throws IOException {
        write(f, at, ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt(0, v));
    }

    /** The GUID in its text form from 16 on-disk bytes. */
    static String guid(ByteBuffer b, int at) {
        return String.format("%08x-%04x-%04x-%02x%02x-%02x%02x%02x%02x%02x%02x", b.getInt(at),
                b.getShort(at + 4) & 0xffff, b.getShort(at + 6) & 0xffff, b.get(at + 8), b.get(at + 9),
                b.get(at + 10), b.get(at + 11), b.get(at + 12), b.get(at + 13), b.get(at + 14), b.get(at + 15));
    }

    /** The file offset of a region (BAT, metadata) from region table 1. */
    static long region(Path f, String guid) throws IOException {
        ByteBuffer t = read(f, REGION1, 64 * 1024);
        int n = t.getInt(8);
        for (int i = 0; i < n; i++) {
            if (guid(t, 16 + 32 * i).equals(guid)) {
                return t.getLong(16 + 32 * i + 16);
            }
        }
        throw new AssertionError("no region " + guid);
    }

    /** The file offset of a metadata item's value. */
    static long item(Path f, String guid) throws IOException {
        long meta = region(f, METADATA_GUID);
        ByteBuffer t = read(f, meta, 64 * 1024);
        int n = t.getShort(10) & 0xffff;
        for (int i = 0; i < n; i++) {
            if (guid(t, 32 + 32 * i).equals(guid)) {
                return meta + Integer.toUnsignedLong(t.getInt(32 + 32 * i + 16));
            }
        }
        throw new AssertionError("no metadata item " + guid);
    }

    static long batEntry(Path f, long index) throws IOException {
        return read(f, region(f, BAT_GUID) + 8 * index, 8).getLong(0);
    }

    static void setBatEntry(Path f, long index, long value) throws IOException {
        putLong(f, region(f, BAT_GUID) + 8 * index, value);
    }

    static int blockSize(Path f) throws IOException {
        return read(f, item(f, FILE_PARAMETERS_GUID), 4).getInt(0);
    }

    /** The BAT index of payload block {@code block} for 512-byte sectors. */
    static long payloadIndex(Path f, long block) throws IOException {
        long chunkRatio = (8L << 20) * 512 / blockSize(f);
        return block + block / chunkRatio;
    }

    /** Recomputes the CRC-32C (at byte 4) of the structure of {@code size} bytes at {@code at}. */
    static void fixChecksum(Path f, long at, int size) throws IOException {
        ByteBuffer b = read(f, at, size);
        b.putInt(4, 0);
        CRC32C c = new CRC32C();
        c.update(b.array());
        putInt(f, at + 4, (int) c.getValue());
    }

    static void fixHeaders(Path f) throws IOException {
        fixChecksum(f, HEADER1, 4096);
        fixChecksum(f, HEADER2, 4096);
    }

    static void fixRegionTables(Path f) throws IOException {
        fixChecksum(f, REGION1, 64 * 1024);
        fixChecksum(f, REGION2, 64 * 1024);
    }
}
