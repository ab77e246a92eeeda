package io.diskmorph.format.qed;

import com.fasterxml.jackson.databind.JsonNode;
import io.diskmorph.image.CreateSpec;
import io.diskmorph.image.DiskImage;
import io.diskmorph.image.ImageException;
import io.diskmorph.image.Images;
import io.diskmorph.image.OpenContext;
import io.diskmorph.image.OpenOptions;
import io.diskmorph.storage.MemoryStorage;
import io.diskmorph.testing.Dm;
import io.diskmorph.testing.Qemu;
import io.diskmorph.testing.RecordingStorage;
import io.diskmorph.testing.RecordingStorage.Event;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Images created and written by diskmorph: qemu-img check clean, qemu-img compare identical to a raw mirror. */
class QedWriteTest {
    @TempDir
    Path dir;

    /**
     * Seeded random guest writes (partial clusters, runs across clusters and
     * L2 tables, zero writes aligned and not, with and without unmap),
     * mirrored into a raw reference written with plain file I/O.
     */
    @ParameterizedTest(name = "cluster_size={0} table_size={1} backing={2} seed={3}")
    @CsvSource({"4096,2,none,1", "4096,4,raw,2", "4096,16,qed,3", "65536,2,none,4", "65536,4,raw,5",
            "65536,16,qed,6", "65536,4,none,7", "4096,2,raw,8", "1048576,2,raw,9", "1048576,16,none,10"})
    void randomWritesMatchARawMirror(long c, long t, String backing, long seed) throws Exception {
        long size = (c == 4096 ? 9L << 20 : 40L << 20) + 1536;
        Path f = dir.resolve("w.qed");
        Path ref = dir.resolve("ref.raw");
        List<String> create = new ArrayList<>(List.of("create", "-q", "-f", "qed", "-o",
                "cluster_size=" + c + ",table_size=" + t));
        if (!backing.equals("none")) {
            Path base = makeBase(backing, size - 3 * c); // shorter than the overlay: its tail reads zeros
            create.addAll(List.of("-b", base.getFileName().toString(), "-F", backing));
            Qemu.toRaw(base, backing, ref);
        }
        create.addAll(List.of(f.toString(), String.valueOf(size)));
        Dm.run(create.toArray()).ok();
        try (FileChannel r = FileChannel.open(ref, StandardOpenOption.CREATE, StandardOpenOption.WRITE)) {
            r.truncate(size);
            if (r.size() < size) {
                r.write(ByteBuffer.allocate(1), size - 1);
            }
        }
        Random rnd = new Random(seed);
        try (DiskImage img = Images.open(f, OpenOptions.forWriting().withFormat("qed"));
             FileChannel r = FileChannel.open(ref, StandardOpenOption.WRITE)) {
            for (int op = 0; op < 80; op++) {
                long pos = rnd.nextInt(4) == 0 ? rnd.nextLong(size / c) * c : rnd.nextLong(size);
                long len = Math.min(size - pos, 1 + rnd.nextLong(rnd.nextBoolean() ? c / 2 : 3 * c));
                switch (rnd.nextInt(5)) {
                    case 0, 1, 2 -> {
                        byte[] data = new byte[(int) len];
                        rnd.nextBytes(data);
                        img.write(ByteBuffer.wrap(data), pos);
                        write(r, pos, data);
                    }
                    case 3 -> {
                        long start = pos - pos % c;
                        long n = Math.min(size - start, c * (1 + rnd.nextInt(3)));
                        img.writeZeroes(start, n, rnd.nextBoolean());
                        write(r, start, new byte[(int) n]);
                    }
                    default -> {
                        img.writeZeroes(pos, len, rnd.nextBoolean());
                        write(r, pos, new byte[(int) len]);
                    }
                }
                if (rnd.nextInt(20) == 0) {
                    img.flush();
                }
            }
        }
        Qemu.Result check = Qemu.check(f, "qed");
        assertEquals(0, check.exitCode(), check.out() + check.err());
        assertFalse(check.json().has("leaks"), "no leaks");
        assertEquals(0, Qemu.compare(f, ref), "qemu reads what we wrote");
        assertEquals(0, Files.size(f) % c, "file ends at a cluster boundary");
        assertEquals(0, QedFiles.u64(f, 16) & QedHeader.F_NEED_CHECK, "need-check cleared on close");
        QedFiles.assertSameMap(f, "qed");
        QedReadTest.assertSameCheck(f);
    }

    private Path makeBase(String format, long size) {
        Path base = dir.resolve("base." + format);
        if (format.equals("raw")) {
            Qemu.create(base, "raw", String.valueOf(size));
        } else {
            Qemu.create(base, "qed", String.valueOf(size), "cluster_size=4096", "table_size=2");
        }
        Qemu.io(base, format, "write -P 0xa5 0 " + size / 2, "write -P 0x5a " + size / 2 + " " + size / 4,
                "write -z " + size / 4 + " 64k");
        return base;
    }

    private static void write(FileChannel ch, long pos, byte[] data) throws IOException {
        ByteBuffer b = ByteBuffer.wrap(data);
        while (b.hasRemaining()) {
            ch.write(b, pos + b.position());
        }
    }

    /**
     * qemu 7.2 fills the untouched part of a zero cluster from the backing
     * file on a partial write (qed_aio_write_cow does not look at the zero
     * flag). We keep zeros, which is what the guest saw.
     */
    @Test
    void partialWriteIntoAZeroClusterKeepsItsZeros() throws Exception {
        Path base = dir.resolve("b.raw");
        Qemu.create(base, "raw", "1M");
        Qemu.io(base, "raw", "write -P 0x55 0 1M");
        Path f = dir.resolve("z.qed");
        Dm.run("create", "-q", "-f", "qed", "-b", "b.raw", "-F", "raw", f, "1M").ok();
        try (DiskImage img = Images.open(f, OpenOptions.forWriting().withFormat("qed"))) {
            img.writeZeroes(0, 65536, false);
            img.write(ByteBuffer.wrap(new byte[]{1, 2, 3}), 100);
        }
        Qemu.io(f, "qed", "read -P 0 0 100", "read -P 0 103 65433", "read -P 0x55 64k 960k");
        assertEquals(0, Qemu.check(f, "qed").exitCode());
    }

    @Test
    void zeroWritesUseZeroClustersAndKeepAllocatedClustersInPlace() throws Exception {
        Path base = dir.resolve("b.raw");
        Qemu.create(base, "raw", "2M");
        Qemu.io(base, "raw", "write -P 0x77 0 2M");
        Path f = dir.resolve("z.qed");
        Dm.run("create", "-q", "-f", "qed", "-o", "cluster_size=65536", "-b", "b.raw", "-F", "raw", f, "2M").ok();
        try (DiskImage img = Images.open(f, OpenOptions.forWriting().withFormat("qed"))) {
            img.write(ByteBuffer.wrap(new byte[65536 * 2]).put(0, (byte) 9), 0);
            img.flush();
            long end = Files.size(f);
            img.writeZeroes(0, 65536, true);            // allocated: stays mapped, reads zeros
            img.writeZeroes(65536, 65536, false);
            img.writeZeroes(4 * 65536, 3 * 65536, true); // unallocated over a backing file: zero clusters
            img.flush();
            assertEquals(end, Files.size(f), "no data cluster allocated for zeros");
        }
        List<Qemu.MapLine> map = Qemu.map(f, "qed");
        assertEquals(new Qemu.MapLine(0, 131072, 0, true, false, true, 5 * 65536), map.get(0));
        assertEquals(new Qemu.MapLine(4 * 65536, 3 * 65536, 0, true, true, false, -1), map.get(2));
        Qemu.io(f, "qed", "read -P 0 0 128k", "read -P 0x77 128k 128k", "read -P 0 256k 192k");
        Qemu.Result check = Qemu.check(f, "qed");
        assertEquals(0, check.exitCode(), check.out());
    }

    @Test
    void zeroWritesWithoutBackingAllocateNothing() throws Exception {
        Path f = dir.resolve("n.qed");
        Dm.run("create", "-q", "-f", "qed", f, "1G").ok();
        long before = Files.size(f);
        try (DiskImage img = Images.open(f, OpenOptions.forWriting().withFormat("qed"))) {
            img.writeZeroes(0, 1L << 30, true);
            img.writeZeroes(12345, 100000, false);
        }
        assertEquals(before, Files.size(f));
        assertEquals(List.of(new Qemu.MapLine(0, 1L << 30, 0, false, true, false, -1)), Qemu.map(f, "qed"));
    }

    @Test
    void needCheckIsSetBeforeAllocatingAndClearedByFlush() throws Exception {
        Path f = dir.resolve("nc.qed");
        Dm.run("create", "-q", "-f", "qed", f, "4M").ok();
        try (DiskImage img = Images.open(f, OpenOptions.forWriting().withFormat("qed"))) {
            img.write(ByteBuffer.wrap(new byte[100]), 4096);
            assertEquals(QedHeader.F_NEED_CHECK, QedFiles.u64(f, 16), "set on disk before the tables change");
            img.flush();
            assertEquals(0, QedFiles.u64(f, 16), "cleared once the tables are durable");
            img.write(ByteBuffer.wrap(new byte[100]), 8192);
            assertEquals(0, QedFiles.u64(f, 16), "an in-place write does not allocate");
            img.writeZeroes(2 << 20, 65536, false);
            assertEquals(0, QedFiles.u64(f, 16), "zeros over unallocated space without backing change nothing");
        }
        // with a backing file qemu relies on flushing data before the L2 update and leaves the bit alone
        Path base = dir.resolve("b.raw");
        Qemu.create(base, "raw", "4M");
        Path top = dir.resolve("top.qed");
        Dm.run("create", "-q", "-f", "qed", "-b", "b.raw", "-F", "raw", top, "4M").ok();
        try (DiskImage img = Images.open(top, OpenOptions.forWriting().withFormat("qed"))) {
            img.write(ByteBuffer.wrap(new byte[100]), 4096);
            assertEquals(QedHeader.F_BACKING_FILE | QedHeader.F_BACKING_FORMAT_NO_PROBE, QedFiles.u64(top, 16));
        }
    }

    /** Crash-safe order and batching: data, sync, L2 pages, sync, L1 pages, sync; a handful of syncs in all. */
    @Test
    void flushWritesDataThenL2ThenL1() throws Exception {
        RecordingStorage s = new RecordingStorage(new MemoryStorage("rec"));
        long c = 4096;
        QedFormat fmt = new QedFormat();
        try (DiskImage img = fmt.create(s, new CreateSpec(64L << 20, Map.of("cluster_size", "4096", "table_size",
                "2"), null, null), new OpenContext(null, false, null, false))) {
            s.events.clear();
            Random rnd = new Random(42);
            for (int i = 0; i < 200; i++) {
                byte[] d = new byte[1 + rnd.nextInt(8192)];
                rnd.nextBytes(d);
                img.write(ByteBuffer.wrap(d), rnd.nextLong((64L << 20) - d.length));
            }
            img.flush();
            QedHeader h = ((QedImage) img).header();
            long l1 = h.l1TableOffset;
            List<Long> l2s = new ArrayList<>();
            for (long i = 0; i < 16; i++) {
                long e = img.storage().readBytes(l1 + 8 * i, 8).order(java.nio.ByteOrder.LITTLE_ENDIAN).getLong();
                if (e != 0) {
                    l2s.add(e);
                }
            }
            assertEquals(16, l2s.size(), "64 MiB over 4 MiB L2 tables");
            int firstL1 = -1;
            int lastData = -1;
            int firstL2Page = -1;
            int lastL2Page = -1;
            int syncs = 0;
            for (int i = 0; i < s.events.size(); i++) {
                Event e = s.events.get(i);
                if (e.sync()) {
                    syncs++;
                    continue;
                }
                boolean inL1 = e.offset() >= l1 && e.offset() < l1 + h.tableBytes();
                boolean inL2 = l2s.stream().anyMatch(t -> e.offset() >= t && e.offset() < t + h.tableBytes());
                if (inL1 && firstL1 < 0) {
                    firstL1 = i;
                } else if (inL2 && !e.zeros()) {
                    lastL2Page = i;
                    if (firstL2Page < 0) {
                        firstL2Page = i;
                    }
                } else if (!inL1 && !inL2 && e.offset() >= c) {
                    lastData = i;
                }
            }
            assertTrue(syncBetween(s.events, lastData, firstL2Page), "data synced before L2 tables point at it");
            assertTrue(syncBetween(s.events, lastL2Page, firstL1), "L2 tables synced before L1 points at them");
            assertTrue(syncs <= 6, "metadata is batched: " + syncs + " syncs");
        }
    }

    private static boolean syncBetween(List<Event> events, int from, int to) {
        assertTrue(from >= 0 && to > from, "ordering " + from + " < " + to);
        return events.subList(from, to).stream().anyMatch(e -> e.sync());
    }

    /**
     * More L2 tables than the 8 MiB page cache holds (64 KiB pages, 128 KiB
     * tables): dirty pages force metadata flushes on eviction and evicted
     * tables are read back when revisited.
     */
    @Test
    void tableCacheEvictionKeepsEverything() throws Exception {
        Path f = dir.resolve("many.qed");
        long gib = 1L << 30;
        Dm.run("create", "-q", "-f", "qed", "-o", "cluster_size=64k,table_size=2", f, "200G").ok();
        try (DiskImage img = Images.open(f, OpenOptions.forWriting().withFormat("qed"))) {
            for (int pass = 0; pass < 2; pass++) {
                for (long region = 0; region < 180; region++) {
                    ByteBuffer b = ByteBuffer.allocate(4096);
                    b.put(0, (byte) (region + 1)).put(4095, (byte) (pass + 1));
                    img.write(b, region * gib + pass * 65536 + 512);
                }
            }
        }
        Qemu.Result check = Qemu.check(f, "qed");
        assertEquals(0, check.exitCode(), check.out());
        assertEquals(360, check.json().get("allocated-clusters").asLong());
        Qemu.io(f, "qed", "read -P 1 512 1", "read -P 1 4607 1", "read -P 1 66048 1", "read -P 2 70143 1",
                "read -P 180 " + (179 * gib + 512) + " 1", "read -P 2 " + (179 * gib + 70143) + " 1");
        QedFiles.assertSameMap(f, "qed");
    }

    @Test
    void writesToAQemuImageStayConsistent() throws Exception {
        Path f = dir.resolve("q.qed");
        Qemu.create(f, "qed", "20M", "cluster_size=4096", "table_size=4");
        Qemu.io(f, "qed", "write -P 1 0 1M", "write -z 2M 1M", "write -P 2 9M 100k");
        Path ref = dir.resolve("q.raw");
        Qemu.toRaw(f, "qed", ref);
        try (DiskImage img = Images.open(f, OpenOptions.forWriting().withFormat("qed"));
             FileChannel r = FileChannel.open(ref, StandardOpenOption.WRITE)) {
            byte[] d = new byte[300000];
            new Random(3).nextBytes(d);
            for (long pos : new long[]{500, 2_000_000, 9_500_000, 16_000_123}) {
                img.write(ByteBuffer.wrap(d), pos);
                write(r, pos, d);
            }
        }
        assertEquals(0, Qemu.check(f, "qed").exitCode());
        assertEquals(0, Qemu.compare(f, ref));
    }

    /** qemu repairs an image left with need-check when it opens it for writing; so do we, before writing. */
    @Test
    void needCheckImageIsRepairedBeforeTheFirstWrite() throws Exception {
        Path f = dir.resolve("r.qed");
        Qemu.create(f, "qed", "8M", "cluster_size=4096", "table_size=2");
        Qemu.io(f, "qed", "write -P 1 0 8k");
        long l2 = QedFiles.l2Of(f, 0);
        QedFiles.putU64(f, l2 + 8, 0x123400); // past the end: dropped by the repair
        QedFiles.putU64(f, 16, QedHeader.F_NEED_CHECK);
        Path q = dir.resolve("q.qed");
        Files.copy(f, q);
        Qemu.io(q, "qed", "write -P 2 1M 4k");
        try (DiskImage img = Images.open(f, OpenOptions.forWriting().withFormat("qed"))) {
            img.write(ByteBuffer.wrap(new byte[4096]).put(0, (byte) 2), 1 << 20);
        }
        assertEquals(0, QedFiles.u64(f, l2 + 8), "invalid entry dropped");
        assertEquals(0, QedFiles.u64(f, 16), "flag cleared");
        JsonNode ours = Qemu.check(f, "qed").json();
        JsonNode theirs = Qemu.check(q, "qed").json();
        assertEquals(theirs.get("leaks"), ours.get("leaks"));
        assertEquals(theirs.get("corruptions"), ours.get("corruptions"));
    }

    @Test
    void unknownAutoclearBitsAreResetByAWriterAndCompatBitsKept() throws Exception {
        Path f = dir.resolve("a.qed");
        Qemu.create(f, "qed", "1M");
        QedFiles.putU64(f, 24, 0x10);   // compat
        QedFiles.putU64(f, 32, 0x8000); // autoclear
        Path q = dir.resolve("q.qed");
        Files.copy(f, q);
        Qemu.io(q, "qed", "write 0 4k");
        try (DiskImage img = Images.open(f, OpenOptions.forWriting().withFormat("qed"))) {
            img.write(ByteBuffer.wrap(new byte[4096]), 0);
        }
        assertEquals(QedFiles.u64(q, 32), QedFiles.u64(f, 32));
        assertEquals(0, QedFiles.u64(f, 32));
        assertEquals(0x10, QedFiles.u64(f, 24));
    }

    @Test
    void readOnlyImagesRefuseWrites() throws Exception {
        Path f = dir.resolve("ro.qed");
        Qemu.create(f, "qed", "1M");
        String before = QedFiles.digest(f);
        try (DiskImage img = Images.open(f, OpenOptions.forReading().withFormat("qed"))) {
            assertThrows(ImageException.class, () -> img.write(ByteBuffer.wrap(new byte[10]), 0));
            assertThrows(ImageException.class, () -> img.writeZeroes(0, 4096, true));
        }
        assertEquals(before, QedFiles.digest(f));
    }
}
