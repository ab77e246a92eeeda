package io.diskmorph.fuzz;

import io.diskmorph.testing.Qemu;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Comparator;
import java.util.function.Consumer;
import java.util.stream.Stream;

/**
 * qcow2 files made by qemu-img and then damaged in one field: the patcher
 * reads the structures' places from the header and tables (big-endian, per
 * docs/interop/qcow2.rst), independent of the driver under test, so a test
 * plants exactly one bad value at a known offset.
 */
final class Qcow2Patcher {
    static final long COPIED = 1L << 63;
    static final long COMPRESSED = 1L << 62;
    static final long OFFSET_MASK = 0x00fffffffffffe00L;

    // header field offsets (qcow2.rst "Header")
    static final int OFF_BACKING_FILE_OFFSET = 8;
    static final int OFF_CLUSTER_BITS = 20;
    static final int OFF_L1_SIZE = 36;
    static final int OFF_L1_OFFSET = 40;
    static final int OFF_REFTABLE_OFFSET = 48;
    static final int OFF_REFTABLE_CLUSTERS = 56;
    static final int OFF_NB_SNAPSHOTS = 60;
    static final int OFF_SNAPSHOTS_OFFSET = 64;

    private final Path file;

    private Qcow2Patcher(Path file) {
        this.file = file;
    }

    /**
     * An 8 MiB qcow2 with 4 KiB clusters (L1 of 4 entries, one L2 table):
     * data at guest 0 and 4 KiB, a zero cluster at 64 KiB, a compressed
     * cluster at 128 KiB (L2 entry 32); {@code extra} are more qemu-io
     * commands, {@code options} more create options.
     */
    static byte[] build(String options, Consumer<Qcow2Patcher> damage, String... extra) throws IOException {
        Path dir = Files.createTempDirectory("qcow2-patcher");
        try {
            Path f = dir.resolve("p.qcow2");
            Qemu.create(f, "qcow2", "8M", options.isEmpty() ? "cluster_size=4k" : "cluster_size=4k," + options);
            String[] io = new String[4 + extra.length];
            io[0] = "write -P 0x11 0 4k";
            io[1] = "write -P 0x22 4k 4k";
            io[2] = "write -z 64k 4k";
            io[3] = "write -c -P 0x33 128k 4k";
            System.arraycopy(extra, 0, io, 4, extra.length);
            Qemu.io(f, "qcow2", io);
            damage.accept(new Qcow2Patcher(f));
            return Files.readAllBytes(f);
        } finally {
            try (Stream<Path> s = Files.walk(dir)) {
                s.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
            }
        }
    }

    long u64(long offset) {
        return read(offset, 8).getLong(0);
    }

    long u32(long offset) {
        return Integer.toUnsignedLong(read(offset, 4).getInt(0));
    }

    long l1Offset() {
        return u64(OFF_L1_OFFSET);
    }

    long l1EntryOffset(int index) {
        return l1Offset() + 8L * index;
    }

    long l2Offset(int l1Index) {
        return u64(l1EntryOffset(l1Index)) & OFFSET_MASK;
    }

    long l2EntryOffset(int l1Index, int index) {
        return l2Offset(l1Index) + 8L * index;
    }

    long reftableOffset() {
        return u64(OFF_REFTABLE_OFFSET);
    }

    long snapshotsOffset() {
        return u64(OFF_SNAPSHOTS_OFFSET);
    }

    void putU64(long offset, long value) {
        write(offset, ByteBuffer.allocate(8).putLong(0, value));
    }

    void putU32(long offset, long value) {
        write(offset, ByteBuffer.allocate(4).putInt(0, (int) value));
    }

    private ByteBuffer read(long offset, int n) {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            ByteBuffer b = ByteBuffer.allocate(n);
            ch.read(b, offset);
            return b.clear();
        } catch (IOException e) {
            throw new AssertionError(e);
        }
    }

    private void write(long offset, ByteBuffer b) {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.WRITE)) {
            ch.write(b, offset);
        } catch (IOException e) {
            throw new AssertionError(e);
        }
    }
}
