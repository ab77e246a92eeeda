package io.diskmorph.storage;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The JNI shim and java.lang.foreign give the same answers, results and errno values alike. */
class SyscallsTest {
    private static final long M = 1 << 20;

    @TempDir
    Path dir;

    private static Syscalls jni() {
        Syscalls s = JniSyscalls.load();
        assertNotNull(s, "the build makes target/native/libdiskmorph.so where a C compiler is");
        return s;
    }

    private static Syscalls foreign() {
        Syscalls s = ForeignSyscalls.link();
        assertNotNull(s, "java.lang.foreign links syscall(2) on Linux x86_64/aarch64");
        return s;
    }

    @Test
    void theProcessUsesTheShim() {
        assertTrue(NativeFs.CALLS instanceof JniSyscalls, String.valueOf(NativeFs.CALLS));
    }

    @Test
    void sparseQueriesSizesAndErrorsAgree() throws Exception {
        Path f = dir.resolve("sparse");
        try (RandomAccessFile raf = new RandomAccessFile(f.toFile(), "rw")) {
            raf.setLength(16 * M);
            raf.seek(M);
            raf.write(new byte[] {1});
            raf.seek(9 * M);
            raf.write(new byte[4096]); // written zeros are data
        }
        for (Syscalls s : new Syscalls[] {jni(), foreign()}) {
            String who = s.getClass().getSimpleName();
            long fd = s.open(f.toString(), NativeFs.O_RDWR);
            assertTrue(fd >= 0, who + " open: " + fd);
            try {
                int d = (int) fd;
                assertEquals(M, s.lseek(d, 0, NativeFs.SEEK_DATA), who);
                long hole = s.lseek(d, M, NativeFs.SEEK_HOLE);
                assertTrue(hole > M && hole <= 9 * M, who + " hole at " + hole);
                assertEquals(9 * M, s.lseek(d, hole, NativeFs.SEEK_DATA), who);
                assertEquals(-NativeFs.ENXIO, s.lseek(d, 10 * M, NativeFs.SEEK_DATA), who + ": no data after");
                assertEquals(Files.getAttribute(f, "size"), 16 * M);
                assertEquals(jni().filesystemType(d), foreign().filesystemType(d), who + ": fstatfs");
                assertEquals(NativeFs.EXT4_SUPER_MAGIC == s.filesystemType(d),
                        "ext4".equals(Files.getFileStore(f).type()) || "ext3".equals(Files.getFileStore(f).type())
                                || "ext2".equals(Files.getFileStore(f).type()), who);
                long blocks = s.blocks(d);
                assertTrue(blocks > 0 && blocks * 512 <= 2 * M, who + " blocks " + blocks);
                assertEquals(0, s.fallocate(d, NativeFs.FALLOC_FL_PUNCH_HOLE | NativeFs.FALLOC_FL_KEEP_SIZE,
                        9 * M, 4096), who);
                assertEquals(-NativeFs.ENXIO, s.lseek(d, 2 * M, NativeFs.SEEK_DATA), who + ": punched");
                assertEquals(-NativeFs.EINVAL, s.lseek(d, 0, 99), who + ": bad whence");
                // blocks allocated past the end, given back by a truncate to the file's own size
                long before = s.blocks(d);
                assertEquals(0, s.fallocate(d, NativeFs.FALLOC_FL_KEEP_SIZE, 16 * M, 4 * M), who);
                assertEquals(16 * M, (long) Files.getAttribute(f, "size"), who + ": size kept");
                assertTrue(s.blocks(d) >= before + 4 * M / 512, who + " allocated past the end");
                assertEquals(0, s.truncate(d, 16 * M), who);
                assertEquals(before, s.blocks(d), who + ": given back");
                assertEquals(-NativeFs.EBADF, s.truncate(-1, 0), who);
            } finally {
                assertEquals(0, s.close((int) fd), who);
            }
            try (RandomAccessFile raf = new RandomAccessFile(f.toFile(), "rw")) {
                raf.seek(9 * M);
                raf.write(new byte[4096]); // back for the next backend
            }
            assertEquals(-NativeFs.ENOENT, s.open(dir.resolve("missing").toString(), NativeFs.O_RDONLY), who);
            assertEquals(-NativeFs.EBADF, s.lseek(-1, 0, NativeFs.SEEK_DATA), who);
            assertEquals(-NativeFs.EBADF, s.blocks(-1), who);
            assertEquals(-NativeFs.EBADF, s.filesystemType(-1), who);
        }
    }

    @Test
    void writebackAndDroppingAgree() throws Exception {
        for (Syscalls s : new Syscalls[] {jni(), foreign()}) {
            String who = s.getClass().getSimpleName();
            Path f = dir.resolve("written-" + who);
            try (RandomAccessFile raf = new RandomAccessFile(f.toFile(), "rw")) {
                for (int i = 0; i < 4; i++) {
                    raf.write(new byte[(int) M]); // page cache folios of at most 1 MiB: none crosses 3 MiB
                }
            }
            long cached = io.diskmorph.testing.PageCache.residentBytes(f);
            assertTrue(cached > 3 * M, who + ": written, cached: " + cached);
            long fd = s.open(f.toString(), NativeFs.O_RDWR);
            try {
                int d = (int) fd;
                assertEquals(0, s.syncFileRange(d, 0, 4 * M, NativeFs.SYNC_FILE_RANGE_WRITE), who);
                assertEquals(0, s.syncFileRange(d, 0, 3 * M, NativeFs.SYNC_FILE_RANGE_WAIT_BEFORE
                        | NativeFs.SYNC_FILE_RANGE_WRITE | NativeFs.SYNC_FILE_RANGE_WAIT_AFTER), who);
                assertEquals(0, s.fadvise(d, 0, 3 * M, NativeFs.POSIX_FADV_DONTNEED), who);
                long left = io.diskmorph.testing.PageCache.residentBytes(f);
                assertTrue(left <= M && left > 0, who + ": 3 MiB dropped, the last one kept: " + left);
                assertEquals(-NativeFs.EINVAL, s.syncFileRange(d, -1, 1, NativeFs.SYNC_FILE_RANGE_WRITE), who);
                assertEquals(-NativeFs.EINVAL, s.fadvise(d, 0, 1, 99), who + ": bad advice");
            } finally {
                s.close((int) fd);
            }
            assertEquals(-NativeFs.EBADF, s.syncFileRange(-1, 0, 1, NativeFs.SYNC_FILE_RANGE_WRITE), who);
            assertEquals(-NativeFs.EBADF, s.fadvise(-1, 0, 1, NativeFs.POSIX_FADV_DONTNEED), who);
        }
    }

    @Test
    void threadCpuTimeCountsWorkNotWaiting() throws Exception {
        jni();
        long start = JniSyscalls.threadCpuNanos0();
        Thread.sleep(300);
        long slept = JniSyscalls.threadCpuNanos0();
        assertTrue(slept - start < 100_000_000L, "sleeping: " + (slept - start) + " ns of CPU");
        // work until the thread's CPU time has grown by 50 ms: it must, however busy the machine
        long spin = 0;
        long deadline = System.nanoTime() + 30_000_000_000L;
        while (JniSyscalls.threadCpuNanos0() - slept < 50_000_000L) {
            spin++;
            assertTrue(System.nanoTime() < deadline, "30 s of spinning (" + spin + " times) and no CPU time counted");
        }
    }

    @Test
    void ofdLocksTakenThroughOneAreSeenThroughTheOther() throws Exception {
        Path f = dir.resolve("locked");
        Files.write(f, new byte[512]);
        Syscalls jni = jni();
        Syscalls foreign = foreign();
        int a = (int) jni.open(f.toString(), NativeFs.O_RDWR);
        int b = (int) foreign.open(f.toString(), NativeFs.O_RDWR);
        try {
            assertEquals(0, jni.ofdLock(a, NativeFs.F_OFD_SETLK, NativeFs.F_WRLCK, 100, 1));
            assertEquals(NativeFs.F_WRLCK, foreign.ofdLock(b, NativeFs.F_OFD_GETLK, NativeFs.F_RDLCK, 100, 1));
            assertEquals(NativeFs.F_UNLCK, foreign.ofdLock(b, NativeFs.F_OFD_GETLK, NativeFs.F_RDLCK, 101, 1));
            long refused = foreign.ofdLock(b, NativeFs.F_OFD_SETLK, NativeFs.F_RDLCK, 100, 1);
            assertTrue(refused == -NativeFs.EAGAIN || refused == -NativeFs.EACCES, String.valueOf(refused));
            assertEquals(0, foreign.ofdLock(b, NativeFs.F_OFD_SETLK, NativeFs.F_RDLCK, 200, 1));
            assertEquals(NativeFs.F_RDLCK, jni.ofdLock(a, NativeFs.F_OFD_GETLK, NativeFs.F_WRLCK, 200, 1));
            // the lock holder's own description never conflicts with itself
            assertEquals(NativeFs.F_UNLCK, jni.ofdLock(a, NativeFs.F_OFD_GETLK, NativeFs.F_WRLCK, 100, 1));
            assertEquals(0, jni.ofdLock(a, NativeFs.F_OFD_SETLK, NativeFs.F_UNLCK, 100, 1));
            assertEquals(NativeFs.F_UNLCK, foreign.ofdLock(b, NativeFs.F_OFD_GETLK, NativeFs.F_WRLCK, 100, 1));
        } finally {
            jni.close(a);
            foreign.close(b);
        }
    }
}
