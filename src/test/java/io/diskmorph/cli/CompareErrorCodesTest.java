package io.diskmorph.cli;

import io.diskmorph.testing.Dm;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * compare's failure codes are qemu-img's: 2 when an image cannot be opened,
 * 3 when its allocation cannot be asked (a damaged table entry), 4 when its
 * data cannot be read (a damaged compressed cluster). Each damaged image is
 * given to qemu-img compare too, which must answer the same code.
 */
class CompareErrorCodesTest {
    private static final long COMPRESSED = 1L << 62;
    private static final long COPIED = 1L << 63;

    @TempDir
    Path dir;

    /** An 8 MiB qcow2 with 4 KiB clusters: data at guest 0, a compressed cluster at 128 KiB; and its raw copy. */
    private Path[] sample() {
        Path q = dir.resolve("d.qcow2");
        Qemu.create(q, "qcow2", "8M", "cluster_size=4k");
        Qemu.io(q, "qcow2", "write -P 0x11 0 4k", "write -c -P 0x33 128k 4k");
        Path raw = dir.resolve("d.raw");
        Qemu.toRaw(q, "qcow2", raw);
        return new Path[] {q, raw};
    }

    /** The L2 entry of guest cluster {@code index} (4 KiB clusters: L1 entry 0 covers 2 MiB), at its host offset. */
    private static long l2EntryOffset(FileChannel ch, int index) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(8);
        ch.read(b.clear(), 40);
        long l1 = b.flip().getLong();
        ch.read(b.clear(), l1);
        long l2 = b.flip().getLong() & 0x00fffffffffffe00L;
        return l2 + 8L * index;
    }

    private static long readLong(FileChannel ch, long at) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(8);
        ch.read(b, at);
        return b.flip().getLong();
    }

    private static void writeLong(FileChannel ch, long at, long v) throws IOException {
        ch.write(ByteBuffer.allocate(8).putLong(0, v), at);
    }

    private static void assertCode(int expected, Path a, Path b, String what) {
        Qemu.Result q = Qemu.img("compare", a, b);
        assertEquals(expected, q.exitCode(), "qemu-img compare on " + what + ": " + q);
        Dm.Result d = Dm.run("compare", a, b);
        assertEquals(expected, d.exitCode(), "diskmorph compare on " + what + ": " + d.err());
        String line = d.oneLineError();
        assertTrue(line.contains(a.getFileName().toString()), "names the damaged image: " + line);
    }

    @Test
    void aDataClusterAtAnUnalignedOffsetFailsTheAllocationTest() throws Exception {
        Path[] s = sample();
        try (FileChannel ch = FileChannel.open(s[0], StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            long at = l2EntryOffset(ch, 0);
            long entry = readLong(ch, at);
            writeLong(ch, at, entry | 0x200); // inside its cluster: qcow2 calls this corruption
        }
        assertCode(3, s[0], s[1], "an unaligned data cluster");
    }

    @Test
    void aDamagedCompressedClusterFailsTheRead() throws Exception {
        Path[] s = sample();
        try (FileChannel ch = FileChannel.open(s[0], StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            long entry = readLong(ch, l2EntryOffset(ch, 32));
            assertTrue((entry & COMPRESSED) != 0 && (entry & COPIED) == 0, "guest 128 KiB is compressed");
            // 4 KiB clusters: 62 - (12 - 8) = 58 offset bits
            long host = entry & ((1L << 58) - 1);
            byte[] junk = new byte[64];
            java.util.Arrays.fill(junk, (byte) 0xff);
            ch.write(ByteBuffer.wrap(junk), host);
        }
        assertCode(4, s[0], s[1], "a damaged compressed cluster");
    }

    @Test
    void anImageThatCannotBeOpenedIsCode2() {
        Path[] s = sample();
        Path missing = dir.resolve("missing.qcow2");
        assertEquals(2, Qemu.img("compare", missing, s[1]).exitCode());
        assertEquals(2, Dm.run("compare", missing, s[1]).exitCode());
    }
}
