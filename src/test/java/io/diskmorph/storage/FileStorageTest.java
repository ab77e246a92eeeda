package io.diskmorph.storage;

import io.diskmorph.image.ImageInUseException;
import io.diskmorph.testing.Dm;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.*;

class FileStorageTest {
    @TempDir
    Path dir;

    @Test
    void sparseQueriesFollowTheFilesHoles() throws IOException {
        Path f = dir.resolve("sparse");
        try (FileStorage s = FileStorage.create(f, LockMode.EXCLUSIVE)) {
            s.truncate(16 << 20);
            s.write(ByteBuffer.wrap(new byte[4096]).put(0, (byte) 1), 4 << 20);
            s.sync();
            assertTrue(NativeFs.AVAILABLE, "java.lang.foreign calls must work on Linux");
            assertEquals(4 << 20, s.nextData(0));
            assertEquals((4 << 20) + 4096, s.nextHole(4 << 20));
            assertEquals(16 << 20, s.nextData((4 << 20) + 4096), "only holes follow");
            assertEquals(16 << 20, s.nextHole(16 << 20));
            long allocated = s.allocatedBytes();
            assertTrue(allocated >= 4096 && allocated < (1 << 20), "allocated " + allocated);

            s.punchHole(4 << 20, 4096);
            assertEquals(16 << 20, s.nextData(0));
            assertEquals(0, s.readBytes(4 << 20, 1).get(0));
            assertEquals(16 << 20, s.size(), "punching keeps the size");
        }
    }

    @Test
    void largeWritesAllocatedFirstLeaveTheSameFile() throws IOException {
        Path f = dir.resolve("allocated");
        byte[] data = new byte[1 << 20];
        new java.util.Random(3).nextBytes(data);
        try (FileStorage s = FileStorage.create(f, LockMode.EXCLUSIVE)) {
            s.allocateBeforeLargeWrites();
            s.truncate(16 << 20);
            s.write(ByteBuffer.wrap(data), 4 << 20); // inside the file, over a hole
            s.write(ByteBuffer.wrap(data), 16 << 20); // at the end: grows it
            s.write(ByteBuffer.wrap(data, 0, 4096), 10 << 20); // small: written as is
            boolean ext4 = List.of("ext2", "ext3", "ext4").contains(Files.getFileStore(f).type()); // one magic
            assertEquals(ext4 ? 2 : 0, s.allocatedWrites(), "fallocate before each large write, on ext4 only");
            assertEquals(17 << 20, s.size());
            assertEquals((2 << 20) + 4096, s.allocatedBytes(), "only the written ranges hold blocks");
            assertEquals(4 << 20, s.nextData(0));
            assertEquals(5 << 20, s.nextHole(4 << 20));
        }
        byte[] back = Files.readAllBytes(f);
        assertArrayEquals(data, java.util.Arrays.copyOfRange(back, 4 << 20, 5 << 20));
        assertArrayEquals(data, java.util.Arrays.copyOfRange(back, 16 << 20, 17 << 20));
        assertArrayEquals(java.util.Arrays.copyOf(data, 4096), java.util.Arrays.copyOfRange(back, 10 << 20, (10 << 20) + 4096));
    }

    @Test
    void writesDroppedBehindReachTheFileButLeaveThePageCache() throws Exception {
        byte[] data = new byte[1 << 20];
        new java.util.Random(5).nextBytes(data);
        long[] resident = new long[2];
        for (int dropped = 0; dropped < 2; dropped++) {
            Path f = dir.resolve(dropped == 1 ? "dropped" : "kept");
            try (FileStorage s = FileStorage.create(f, LockMode.EXCLUSIVE)) {
                if (dropped == 1) {
                    s.dropBehindWrites(DropBehind.Mode.ON);
                    assertTrue(s.droppingBehind(), "the JNI shim is built");
                    assertEquals(0, s.bytesUnderWriteback());
                }
                s.write(ByteBuffer.wrap(data, 0, 512), 0); // a header, rewritten at the end
                for (int i = 0; i < 64; i++) {
                    data[0] = (byte) i;
                    s.write(ByteBuffer.wrap(data), (long) (i + 1) << 20);
                }
                s.write(ByteBuffer.wrap(data, 0, 512).put(0, (byte) 7), 0);
                if (dropped == 1) {
                    assertTrue(s.bytesUnderWriteback() <= DropBehind.WINDOW, String.valueOf(s.bytesUnderWriteback()));
                }
            }
            resident[dropped] = io.diskmorph.testing.PageCache.residentBytes(f);
            try (FileStorage s = FileStorage.open(f, true, LockMode.SHARED)) {
                assertEquals(65 << 20, s.size());
                assertEquals(7, s.readBytes(0, 1).get(0), "the rewritten header");
                for (int i = 0; i < 64; i++) {
                    ByteBuffer b = s.readBytes((long) (i + 1) << 20, 1 << 20);
                    data[0] = (byte) i;
                    assertEquals(ByteBuffer.wrap(data), b, "MiB " + (i + 1));
                }
            }
        }
        assertTrue(resident[0] >= 64 << 20, "without drop-behind every written page stays cached: " + resident[0]);
        assertTrue(resident[1] <= DropBehind.WINDOW + DropBehind.STEP + (64 << 10), // and the header's page
                "written and dropped behind, still cached: " + resident[1]);
    }

    @Test
    void writebackErrorsSayWhatFailed() {
        assertEquals("f: writing the data to disk failed (errno 5)",
                FileStorage.writebackFailed("f", new NativeFs.ErrnoException("sync_file_range", "f", 5)).getMessage());
        assertEquals("f: no space left on device",
                FileStorage.writebackFailed("f", new NativeFs.ErrnoException("sync_file_range", "f", 28)).getMessage());
        assertEquals("f: no space left on device",
                FileStorage.writebackFailed("f", new NativeFs.ErrnoException("sync_file_range", "f", 122)).getMessage(),
                "EDQUOT: the user's quota");
    }

    /**
     * A file filled from the front (a qcow2 copy target) gets its blocks
     * 32 MiB ahead of its writes, past its end without changing its size;
     * a write past the allocated end leaves its gap a hole; closing gives
     * the blocks past the end back.
     */
    @Test
    void blocksAllocatedAheadStayPastTheEndUntilClosed() throws IOException {
        Path f = dir.resolve("ahead");
        byte[] data = new byte[64 << 10];
        new java.util.Random(5).nextBytes(data);
        boolean ext4 = List.of("ext2", "ext3", "ext4").contains(Files.getFileStore(f.getParent()).type());
        try (FileStorage s = FileStorage.create(f, LockMode.EXCLUSIVE)) {
            s.allocateAhead();
            for (int i = 0; i < 16; i++) { // 1 MiB in small writes
                s.write(ByteBuffer.wrap(data), (long) i * data.length);
            }
            assertEquals(1 << 20, s.size(), "the size is the data's");
            if (ext4) {
                long ahead = s.allocatedBytes();
                assertTrue(ahead >= FileStorage.AHEAD_STEP && ahead < FileStorage.AHEAD_STEP + (1 << 20),
                        "32 MiB allocated ahead: " + ahead);
                assertEquals(1, s.allocatedWrites(), "in one call");
            }
            s.write(ByteBuffer.wrap(data), 40L << 20); // past the allocated end, leaving a gap
            assertEquals(0, s.readBytes(20 << 20, 1).get(0), "blocks allocated ahead read as zeros");
            assertEquals(0, s.readBytes(36 << 20, 1).get(0));
        }
        try (FileStorage s = FileStorage.open(f, true, LockMode.SHARED)) {
            assertEquals((40L << 20) + data.length, s.size());
            long allocated = s.allocatedBytes();
            // [0, 32 MiB) and the last write's blocks; the gap after 32 MiB and the 32 MiB step allocated
            // past the end with the last write are not
            assertTrue(allocated < (33L << 20), "blocks past the end given back, the gap a hole: " + allocated);
            if (ext4) {
                assertTrue(allocated >= (32L << 20) + data.length, "allocated " + allocated);
            }
        }
        byte[] back = Files.readAllBytes(f);
        for (int i = 0; i < 16; i++) {
            assertArrayEquals(data, java.util.Arrays.copyOfRange(back, i * data.length, (i + 1) * data.length));
        }
        assertArrayEquals(data, java.util.Arrays.copyOfRange(back, 40 << 20, (40 << 20) + data.length));
    }

    /**
     * A mapping may start anywhere in the file: mmap takes page-aligned
     * offsets (16 or 64 KiB pages on some kernels), so the region maps from
     * the page holding its first byte and shows only what was asked for.
     */
    @Test
    void mappedRegionsStartAnywhereAndUnmapOnce() throws IOException {
        Path f = dir.resolve("mapped");
        byte[] data = new byte[1 << 20];
        new java.util.Random(9).nextBytes(data);
        Files.write(f, data);
        try (FileStorage s = FileStorage.open(f, true, LockMode.SHARED)) {
            MappedRegion r = s.mapReadOnly(12345, 300000);
            ByteBuffer b = r.buffer();
            assertEquals(300000, b.remaining());
            assertTrue(b.isReadOnly());
            for (int i = 0; i < 300000; i += 4099) {
                assertEquals(data[12345 + i], b.get(i), "byte " + i);
            }
            assertEquals(data[12345 + 299999], b.get(299999));
            r.dropPages(0, 300000); // the whole pages inside; reading again maps them again
            assertEquals(data[12345 + 150000], r.buffer().get(150000));
            r.unmap();
            assertTrue(r.isUnmapped());
            r.unmap(); // once
            r.dropPages(0, 300000); // nothing to drop any more
        }
    }

    @Test
    void readsPastTheEndAreZeros() throws IOException {
        Path f = dir.resolve("short");
        Files.write(f, new byte[]{1, 2, 3});
        try (FileStorage s = FileStorage.open(f, true, LockMode.SHARED)) {
            ByteBuffer b = s.readBytes(1, 8);
            assertEquals(2, b.get(0));
            assertEquals(3, b.get(1));
            assertEquals(0, b.get(2));
        }
    }

    @Test
    void writerLockExcludesReadersAndWriters() throws IOException {
        Path f = dir.resolve("locked");
        Files.write(f, new byte[4096]);
        try (FileStorage w = FileStorage.open(f, false, LockMode.EXCLUSIVE)) {
            assertThrows(ImageInUseException.class, () -> FileStorage.open(f, true, LockMode.SHARED));
            assertThrows(ImageInUseException.class, () -> FileStorage.open(f, false, LockMode.EXCLUSIVE));
            // a qemu-img reader (map needs consistent reads) must be refused too
            Qemu.Result r = Qemu.img("map", "-f", "raw", f);
            assertNotEquals(0, r.exitCode());
            assertTrue(r.err().contains("lock"), r.err());
            // -U ignores locks, like qemu-img -U
            try (FileStorage u = FileStorage.open(f, true, LockMode.NONE)) {
                assertEquals(4096, u.size());
            }
        }
        try (FileStorage r1 = FileStorage.open(f, true, LockMode.SHARED);
             FileStorage r2 = FileStorage.open(f, true, LockMode.SHARED)) {
            assertEquals(r1.size(), r2.size(), "readers share");
            assertThrows(ImageInUseException.class, () -> FileStorage.open(f, false, LockMode.EXCLUSIVE));
        }
    }

    @Test
    void imageServedByQemuNbdIsRefusedAndUnchanged() throws Exception {
        Path f = dir.resolve("served.qcow2");
        Qemu.create(f, "qcow2", "16M");
        byte[] before = Files.readAllBytes(f);
        Process nbd = new ProcessBuilder("qemu-nbd", "-f", "qcow2", "--persistent",
                "--socket", dir.resolve("nbd.sock").toString(), f.toString()).redirectErrorStream(true)
                .redirectOutput(dir.resolve("nbd.log").toFile()).start();
        try {
            waitForLock(f, nbd);
            assertThrows(ImageInUseException.class, () -> FileStorage.open(f, true, LockMode.SHARED));
            assertThrows(ImageInUseException.class, () -> FileStorage.open(f, false, LockMode.EXCLUSIVE));
            Dm.Result r = Dm.run("info", f);
            assertEquals(io.diskmorph.image.ExitCodes.IN_USE, r.exitCode());
            assertTrue(r.oneLineError().contains("in use"), r.err());
        } finally {
            nbd.destroy();
            nbd.waitFor(10, TimeUnit.SECONDS);
        }
        assertArrayEquals(before, Files.readAllBytes(f));
        try (FileStorage s = FileStorage.open(f, false, LockMode.EXCLUSIVE)) {
            assertEquals(before.length, s.size(), "lock is free once qemu-nbd exits");
        }
    }

    @Test
    void readOnlyOpenWithTheShimLocksNativelyAndQemuSeesIt() throws Exception {
        assertTrue(JniSyscalls.loaded(), "the build makes target/native/libdiskmorph.so where a C compiler is");
        Path f = dir.resolve("shared-native.qcow2");
        Qemu.create(f, "qcow2", "16M");
        byte[] before = Files.readAllBytes(f);
        try (FileStorage r = FileStorage.open(f, true, LockMode.SHARED)) {
            assertTrue(r.hasNativeDescriptor(), "with the shim a reader takes OFD locks like QEMU");
            Qemu.Result w = Qemu.run("qemu-io", "-f", "qcow2", "-c", "write 0 4k", f.toString());
            assertNotEquals(0, w.exitCode(), w.out() + w.err());
            assertTrue((w.out() + w.err()).contains("lock"), w.out() + w.err());
            assertEquals(0, Qemu.img("info", f).exitCode());
            assertEquals(0, r.nextData(0));
            assertTrue(r.allocatedBytes() > 0);
        }
        assertArrayEquals(before, Files.readAllBytes(f), "qemu-io did not write");
        Qemu.io(f, "qcow2", "write 0 4k");
        // and a writer (QEMU's, here qemu-nbd's) refuses the reader through F_OFD_GETLK
        Process nbd = new ProcessBuilder("qemu-nbd", "-f", "qcow2", "--persistent",
                "--socket", dir.resolve("nbd.sock").toString(), f.toString()).redirectErrorStream(true)
                .redirectOutput(dir.resolve("nbd.log").toFile()).start();
        try {
            waitForLock(f, nbd);
            assertThrows(ImageInUseException.class, () -> FileStorage.open(f, true, LockMode.SHARED, false));
        } finally {
            nbd.destroy();
            nbd.waitFor(10, TimeUnit.SECONDS);
        }
    }

    @Test
    void readOnlyOpenLocksWithoutNativeCallsAndQemuSeesIt() throws Exception {
        Path f = dir.resolve("shared.qcow2");
        Qemu.create(f, "qcow2", "16M");
        byte[] before = Files.readAllBytes(f);
        try (FileStorage r = FileStorage.open(f, true, LockMode.SHARED, true)) {
            assertFalse(r.hasNativeDescriptor(), "a shared read-only open takes its locks through the channel");
            // qemu wants the write permission, which this reader refuses to share
            Qemu.Result w = Qemu.run("qemu-io", "-f", "qcow2", "-c", "write 0 4k", f.toString());
            assertNotEquals(0, w.exitCode(), w.out() + w.err());
            assertTrue((w.out() + w.err()).contains("lock"), w.out() + w.err());
            // qemu readers share with us, like qemu-img does with itself
            assertEquals(0, Qemu.img("info", f).exitCode());
            // the sparse queries open the native descriptor when first asked
            assertEquals(0, r.nextData(0));
            assertTrue(r.hasNativeDescriptor());
            assertTrue(r.allocatedBytes() > 0);
        }
        assertArrayEquals(before, Files.readAllBytes(f), "qemu-io did not write");
        Qemu.io(f, "qcow2", "write 0 4k"); // and the lock is gone with the reader
    }

    @Test
    void createdFileLocksThroughItsChannelAndKeepsTheLocks() throws Exception {
        Path f = dir.resolve("created.raw");
        try (FileStorage w = FileStorage.create(f, LockMode.EXCLUSIVE)) {
            assertFalse(w.hasNativeDescriptor(), "a created file takes its locks through the channel");
            w.truncate(16 << 20); // grown through its own descriptor
            assertQemuRefused(f, "a created file is locked against qemu readers");
            Qemu.Result io = Qemu.run("qemu-io", "-f", "raw", "-c", "write 0 4k", f.toString());
            assertNotEquals(0, io.exitCode(), io.out() + io.err());
            // another open in this process is refused before it opens a descriptor (closing one would
            // drop the process's record locks), and the holder's locks stay
            assertThrows(ImageInUseException.class, () -> FileStorage.open(f, true, LockMode.SHARED));
            assertThrows(ImageInUseException.class, () -> FileStorage.open(f, false, LockMode.EXCLUSIVE));
            assertThrows(ImageInUseException.class, () -> FileStorage.create(f, LockMode.EXCLUSIVE));
            assertQemuRefused(f, "refused opens in this process leave the locks in place");
            w.write(ByteBuffer.wrap(new byte[4096]).put(0, (byte) 1), 1 << 20);
            w.punchHole(1 << 20, 4096); // the native descriptor, opened on demand
            assertTrue(w.hasNativeDescriptor());
            assertEquals(16 << 20, w.nextData(0), "punched: only holes");
            assertQemuRefused(f, "opening the native descriptor leaves the locks in place");
        }
        assertEquals(0, Qemu.img("map", "-f", "raw", f).exitCode(), "the locks go with the file's close");
        try (FileStorage again = FileStorage.open(f, false, LockMode.EXCLUSIVE)) {
            assertEquals(16 << 20, again.size());
        }
    }

    @Test
    void createdFileInUseByQemuIsRefused() throws Exception {
        Path f = dir.resolve("served.raw");
        Qemu.create(f, "raw", "16M");
        Process nbd = new ProcessBuilder("qemu-nbd", "-f", "raw", "--persistent",
                "--socket", dir.resolve("nbd.sock").toString(), f.toString()).redirectErrorStream(true)
                .redirectOutput(dir.resolve("nbd.log").toFile()).start();
        try {
            waitForLock(f, nbd);
            assertThrows(ImageInUseException.class, () -> FileStorage.create(f, LockMode.EXCLUSIVE));
        } finally {
            nbd.destroy();
            nbd.waitFor(10, TimeUnit.SECONDS);
        }
        assertEquals(16 << 20, Files.size(f), "the refused create did not truncate");
    }

    @Test
    void createFailuresSayWhy() {
        assertThrows(java.nio.file.NoSuchFileException.class,
                () -> FileStorage.create(dir.resolve("missing/x.raw"), LockMode.EXCLUSIVE));
        IOException e = assertThrows(IOException.class, () -> FileStorage.create(dir, LockMode.EXCLUSIVE));
        assertTrue(e.getMessage().contains("is a directory"), e.getMessage());
    }

    private static void assertQemuRefused(Path f, String why) {
        Qemu.Result r = Qemu.img("map", "-f", "raw", f);
        assertNotEquals(0, r.exitCode(), why);
        assertTrue(r.err().contains("lock"), why + ": " + r.err());
    }

    @Test
    void lockTableLinesAreMatchedByDeviceInodeAndRange() {
        // st_dev 0xfd01 as Java reports it is major 0xfd, minor 0x01 (the kernel prints fd:01)
        LockTable t = LockTable.of("""
                1: OFDLCK ADVISORY  READ  -1 fd:01:1234 100 100
                2: POSIX  ADVISORY  WRITE 77 fd:01:1234 201 203
                3: FLOCK  ADVISORY  WRITE 78 fd:01:1234 0 EOF
                4: POSIX  ADVISORY  READ  79 fd:01:9999 0 EOF
                4: -> POSIX  ADVISORY  WRITE 80 fd:01:1234 300 300
                5: OFDLCK ADVISORY  READ  -1 103:02:1234 400 EOF
                """);
        long dev = 0xfd01;
        assertTrue(t.anyLockOn(dev, 1234, 100));
        assertFalse(t.anyLockOn(dev, 1234, 101));
        assertTrue(t.anyLockOn(dev, 1234, 202));
        assertFalse(t.anyLockOn(dev, 1234, 5), "flock() locks do not conflict with byte-range locks");
        assertFalse(t.anyLockOn(dev, 1234, 300), "a waiter holds nothing");
        assertFalse(t.anyLockOn(dev, 4321, 100), "another inode");
        // major 0x103 minor 2 (nvme-like numbers need the high bits of st_dev)
        long bigDev = ((0x103L & 0xfff) << 8) | 2;
        assertTrue(t.anyLockOn(bigDev, 1234, 1L << 40), "EOF ends the range at infinity");
    }

    /** qemu-nbd creates its socket only after it has opened (and locked) the image. */
    private static void waitForLock(Path f, Process holder) throws Exception {
        Path socket = f.resolveSibling("nbd.sock");
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        while (System.nanoTime() < deadline) {
            if (!holder.isAlive()) {
                fail("qemu-nbd exited early: " + Files.readString(f.resolveSibling("nbd.log")));
            }
            if (Files.exists(socket)) {
                return;
            }
            Thread.sleep(20);
        }
        fail("qemu-nbd never opened the image");
    }
}
