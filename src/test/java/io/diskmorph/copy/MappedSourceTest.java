package io.diskmorph.copy;

import io.diskmorph.image.DiskImage;
import io.diskmorph.image.Images;
import io.diskmorph.image.OpenOptions;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

class MappedSourceTest {
    @TempDir
    Path dir;

    /**
     * A read-only open locks through record locks, which vanish when any descriptor of the file in the
     * process closes: mapping the source must not open (and close) one of its own.
     */
    @Test
    void mappingTheSourceKeepsItsLocks() throws Exception {
        Path f = dir.resolve("src.qcow2");
        Qemu.create(f, "qcow2", "16M");
        Qemu.io(f, "qcow2", "write -P 5 0 1M");
        try (DiskImage img = Images.open(f, OpenOptions.forReading())) {
            try (MappedSource m = new MappedSource(img)) {
                MappedSource.Range r = m.map(0, 1 << 20, 512, 1 << 20);
                assertNotNull(r, "one data extent of a regular file is mapped");
                assertEquals(5, r.buffer.get((1 << 20) - 1));
                r.release();
            }
            Qemu.Result w = Qemu.run("qemu-io", "-f", "qcow2", "-c", "write 0 4k", f.toString());
            assertNotEquals(0, w.exitCode(), "the source is still locked once its mappings are gone: "
                    + w.out() + w.err());
        }
        Qemu.io(f, "qcow2", "write 0 4k"); // and free once the image is closed
    }

    /**
     * Chunks are cut from the last data extent the driver named without asking it again: in an image
     * whose clusters lie out of guest order, every chunk must still come from its own cluster.
     */
    @Test
    void chunksOfAFragmentedImageComeFromTheirOwnClusters() throws Exception {
        Path f = dir.resolve("frag.qcow2");
        Qemu.create(f, "qcow2", "16M");
        // guest clusters 3, 1, 0, 2 written in that order: host order differs from guest order
        for (int cluster : new int[] {3, 1, 0, 2}) {
            Qemu.io(f, "qcow2", "write -P " + (cluster + 1) + " " + cluster * 65536 + " 64k");
        }
        try (DiskImage img = Images.open(f, OpenOptions.forReading());
             MappedSource m = new MappedSource(img)) {
            for (int chunk = 0; chunk < 8; chunk++) { // 32 KiB chunks, the whole run (256 KiB) as the run
                long pos = chunk * 32768L;
                MappedSource.Range r = m.map(pos, 32768, 512, 4 * 65536);
                assertNotNull(r, "chunk " + chunk);
                byte want = (byte) (pos / 65536 + 1);
                assertEquals(want, r.buffer.get(0), "first byte of chunk " + chunk);
                assertEquals(want, r.buffer.get(32767), "last byte of chunk " + chunk);
                r.release();
            }
            assertNull(m.map(65536 - 4096, 8192, 8192, 4 * 65536),
                    "a range over two separate clusters, with no whole unit in the first, is not mapped");
            // the same range in 512-byte units: the part in the first cluster is one range, and what follows
            // it (the next chunk of the copy) comes from its own cluster
            MappedSource.Range head = m.map(65536 - 4096, 8192, 512, 4 * 65536);
            assertNotNull(head, "the first cluster's part of a range over two clusters");
            assertEquals(4096, head.buffer.capacity(), "only the part in the first cluster");
            assertEquals(1, head.buffer.get(4095));
            head.release();
            MappedSource.Range tail = m.map(65536, 4096, 512, 4 * 65536);
            assertEquals(2, tail.buffer.get(0));
            tail.release();
        }
    }

    /**
     * A written range drops its pages from the resident set, but never the
     * pages of a range still in flight: the kernel maps a large page-cache
     * folio with one PMD entry and dropping part of it unmaps all of it, so
     * pages go by whole 2 MiB blocks of addresses that no range in flight
     * touches (the writer otherwise copied from unmapped pages: short
     * writes, retried, 800 per 1.8 GB).
     */
    @Test
    void releasedRangesDropOnlyBlocksNoRangeInFlightTouches() throws Exception {
        Path f = dir.resolve("src.raw");
        byte[] data = new byte[8 << 20];
        new Random(7).nextBytes(data);
        Files.write(f, data);
        try (DiskImage img = Images.open(f, OpenOptions.forReading().withFormat("raw"));
             MappedSource m = new MappedSource(img);
             FileChannel pagemap = FileChannel.open(Path.of("/proc/self/pagemap"))) {
            int mib = 1 << 20;
            MappedSource.Range[] ranges = new MappedSource.Range[6];
            for (int i = 0; i < ranges.length; i++) {
                ranges[i] = m.map((long) i * mib, mib, 512, data.length);
                assertNotNull(ranges[i], "range " + i);
                touch(ranges[i].buffer);
                assertEquals(data[i * mib + 4095], ranges[i].buffer.get(4095));
            }
            // every other range written: the ranges between them are still in flight and keep their pages
            for (int i = 0; i < ranges.length; i += 2) {
                ranges[i].release();
            }
            for (int i = 1; i < ranges.length; i += 2) {
                assertEquals(256, presentPages(pagemap, ranges[i]), "pages of range " + i
                        + ", in flight, after its neighbours were written");
            }
            // pages go by whole 2 MiB blocks: the written range's last page shares a block with the first
            // page of the range after it, still in flight, so it stays (dropping each range's own pages, the
            // way that unmapped a PMD-mapped neighbour, would have dropped it)
            for (int i = 0; i + 1 < ranges.length; i += 2) {
                assertTrue(pagePresent(pagemap, ranges[i].address() + mib - 4096), "last page of written range "
                        + i + ", in the block of range " + (i + 1) + " in flight");
            }
            for (int i = 1; i < ranges.length; i += 2) {
                ranges[i].release();
            }
            // nothing in flight: every block the ranges touched left the resident set
            for (int i = 0; i < ranges.length; i++) {
                assertEquals(0, presentPages(pagemap, ranges[i]), "pages of written range " + i);
            }
        }
    }

    private static void touch(ByteBuffer b) {
        for (int off = 0; off < b.capacity(); off += 4096) {
            b.get(off);
        }
    }

    /** Pages of the range mapped in this process (/proc/self/pagemap: bit 63 of each page's entry). */
    private static boolean pagePresent(FileChannel pagemap, long address) throws Exception {
        ByteBuffer b = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
        while (b.hasRemaining() && pagemap.read(b, address / 4096 * 8 + b.position()) >= 0) {
            // read the whole entry
        }
        return b.getLong(0) < 0;
    }

    private static int presentPages(FileChannel pagemap, MappedSource.Range r) throws Exception {
        long pages = r.buffer.capacity() / 4096;
        ByteBuffer b = ByteBuffer.allocate((int) pages * 8).order(ByteOrder.LITTLE_ENDIAN);
        long at = r.address() / 4096 * 8;
        while (b.hasRemaining()) {
            if (pagemap.read(b, at + b.position()) < 0) {
                break;
            }
        }
        int present = 0;
        for (int i = 0; i < pages; i++) {
            if (b.getLong(i * 8) < 0) {
                present++;
            }
        }
        return present;
    }
}
