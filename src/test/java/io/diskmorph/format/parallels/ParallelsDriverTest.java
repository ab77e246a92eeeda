package io.diskmorph.format.parallels;

import io.diskmorph.image.CreateSpec;
import io.diskmorph.image.DiskImage;
import io.diskmorph.image.ExitCodes;
import io.diskmorph.image.ImageException;
import io.diskmorph.image.Images;
import io.diskmorph.image.OpenContext;
import io.diskmorph.image.OpenOptions;
import io.diskmorph.storage.MemoryStorage;
import io.diskmorph.testing.Dm;
import io.diskmorph.testing.Oracles;
import io.diskmorph.testing.Qemu;
import io.diskmorph.testing.RecordingStorage;
import io.diskmorph.testing.RecordingStorage.Event;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * What the conformance suite does not cover: create byte for byte against
 * qemu-img create, the old magic (entries in sectors), info, the inuse flag
 * (set while a session writes, cleared on close; an unclean image read as
 * qemu reads it, refused for writing and as an in-place source), the write
 * order, copy conversion to parallels against qemu-img convert.
 */
class ParallelsDriverTest {
    @TempDir
    Path dir;

    @ParameterizedTest
    @CsvSource({"5M, ''", "5000, ''", "4M, cluster_size=64k", "5M, cluster_size=1000", "5M, cluster_size=3k",
            "5M, cluster_size=4k", "1G, cluster_size=512", "0, ''", "100G, ''"})
    void createWritesWhatQemuImgCreateWrites(String size, String options) throws Exception {
        Path q = dir.resolve("q.parallels");
        Path d = dir.resolve("d.parallels");
        if (options.isEmpty()) {
            Qemu.img("create", "-q", "-f", "parallels", q, size).ok();
            Dm.run("create", "-q", "-f", "parallels", d, size).ok();
        } else {
            Qemu.img("create", "-q", "-f", "parallels", "-o", options, q, size).ok();
            Dm.run("create", "-q", "-f", "parallels", "-o", options, d, size).ok();
        }
        assertEquals(Files.size(q), Files.size(d), "length");
        assertEquals(-1, Arrays.mismatch(Files.readAllBytes(q), Files.readAllBytes(d)), "bytes");
    }

    @Test
    void createRefusesWhatQemuRefuses() throws Exception {
        Path d = dir.resolve("d.parallels");
        for (String[] c : new String[][]{{"cluster_size=0", "Image size is too large for this cluster size"},
                {"cluster_size=2G", "Cluster size is too large"}, {"cluster_size=2047M", "Cluster size is too large"},
                {"preallocation=full", "preallocation=full is not supported"}}) {
            Dm.Result r = Dm.run("create", "-q", "-f", "parallels", "-o", c[0], d, "5M");
            assertTrue(r.exitCode() == ExitCodes.USAGE || r.exitCode() == ExitCodes.UNSUPPORTED, r.err());
            assertTrue(r.oneLineError().contains(c[1]), c[0] + ": " + r.err());
            assertTrue(!Files.exists(d) || Files.size(d) == 0, "nothing written");
        }
        Dm.Result r = Dm.run("create", "-q", "-f", "parallels", "-o", "cluster_size=512", d, "2T");
        assertTrue(r.oneLineError().contains("Image size is too large for this cluster size"), r.err());
    }

    @Test
    void infoAsQemu() throws Exception {
        Path img = dir.resolve("i.parallels");
        Qemu.create(img, "parallels", "6M", "cluster_size=64k");
        Qemu.io(img, "parallels", "write -P 1 0 64k");
        var theirs = Qemu.img("info", "--output=json", img).json();
        var ours = Dm.run("info", "--output=json", img).json();
        assertEquals(theirs.get("virtual-size"), ours.get("virtual-size"));
        assertEquals(theirs.get("format"), ours.get("format"));
        assertEquals(theirs.size(), ours.size(), theirs + " / " + ours);
    }

    /** The old magic: entries count sectors (qemu reads both); map and guest bytes as qemu's. */
    @Test
    void oldMagicEntriesCountSectors() throws Exception {
        Path img = dir.resolve("old.parallels");
        Qemu.create(img, "parallels", "4M", "cluster_size=64k");
        Qemu.io(img, "parallels", "write -P 1 0 64k", "write -P 2 1M 128k");
        Files.write(img, ParallelsHeader.MAGIC_OLD.getBytes(), StandardOpenOption.WRITE);
        // the clusters at host clusters 1, 2, 3 (64 KiB): in sectors 128, 256, 384; put guest 17 at 512 too
        ParallelsFiles.putEntry(img, 0, 128);
        ParallelsFiles.putEntry(img, 16, 256);
        ParallelsFiles.putEntry(img, 17, 384);
        assertEquals(Qemu.map(img, "parallels"), Dm.map(img, "parallels"));
        assertSameGuestBytes(img);
        // and guest writes to it allocate in sectors
        Dm.run("convert", "-O", "parallels", img, dir.resolve("copy.parallels")).ok();
        try (DiskImage w = Images.open(img, OpenOptions.forWriting().withFormat("parallels"))) {
            w.write(ByteBuffer.wrap(new byte[]{7, 7, 7}), (2L << 20) + 5);
        }
        assertEquals(4 * 128, ParallelsFiles.getU32(img, 64 + 4 * 32), "guest cluster 32 at sector 512");
        assertEquals(0, Qemu.check(img, "parallels").exitCode());
        Qemu.io(img, "parallels", "read -P 7 " + ((2L << 20) + 5) + " 3", "read -P 2 1M 128k");
    }

    private void assertSameGuestBytes(Path img) throws Exception {
        Path q = dir.resolve("guest-q.raw");
        Path d = dir.resolve("guest-d.raw");
        Files.deleteIfExists(d);
        Qemu.toRaw(img, "parallels", q);
        Dm.run("convert", "-f", "parallels", "-O", "raw", img, d).ok();
        assertArrayEquals(Files.readAllBytes(q), Files.readAllBytes(d), "guest bytes");
    }

    /** An image not closed correctly is read as qemu reads it, refused for writing, and not converted in place. */
    @Test
    void uncleanImage() throws Exception {
        Path img = dir.resolve("u.parallels");
        Qemu.create(img, "parallels", "4M", "cluster_size=64k");
        Qemu.io(img, "parallels", "write -P 1 0 64k");
        ParallelsFiles.putU32(img, 44, ParallelsFiles.INUSE);
        String before = ParallelsFiles.sha256(img);
        assertEquals(Qemu.map(img, "parallels"), Dm.map(img, "parallels"));
        assertEquals(0, Dm.run("compare", img, img).exitCode());
        ImageException e = assertThrows(ImageException.class,
                () -> Images.open(img, OpenOptions.forWriting().withFormat("parallels")).close());
        assertEquals(ExitCodes.CORRUPT, e.exitCode());
        assertTrue(e.getMessage().contains("not closed correctly"), e.getMessage());
        Dm.Result r = Dm.run("convert", "--in-place", "-O", "qcow2", img);
        assertEquals(ExitCodes.UNSUPPORTED, r.exitCode(), r.err());
        assertTrue(r.oneLineError().contains("check -r all"), r.err());
        assertEquals(before, ParallelsFiles.sha256(img), "refusals changed the file");
        Dm.run("check", "-r", "all", img);
        Dm.run("convert", "--in-place", "-O", "qcow2", img).ok();
        Oracles.assertCheckClean(img, "qcow2");
    }

    /**
     * A writing session: header with inuse, sync; data, sync; BAT, sync;
     * header without inuse, sync. A session that writes nothing leaves the
     * file as it was.
     */
    @Test
    void writeOrderAndTheInuseFlag() throws Exception {
        RecordingStorage s = new RecordingStorage(new MemoryStorage("rec"));
        ParallelsFormat fmt = new ParallelsFormat();
        long size = 64L << 20;
        fmt.create(s, CreateSpec.of(size), new OpenContext(null, false, null, false)).close();
        byte[] created = s.bytes();
        try (DiskImage img = fmt.open(s, new OpenContext(null, false, null, false))) {
            img.flush();
        }
        assertArrayEquals(created, s.bytes(), "a session without writes changes nothing");
        s.events.clear();
        long batEnd = 64 + 4 * 64;
        Random rnd = new Random(3);
        try (DiskImage img = fmt.open(s, new OpenContext(null, false, null, false))) {
            for (int i = 0; i < 20; i++) {
                byte[] d = new byte[1 + rnd.nextInt(300_000)];
                rnd.nextBytes(d);
                img.write(ByteBuffer.wrap(d), rnd.nextLong(size - d.length));
            }
            assertEquals(ParallelsFiles.INUSE, ByteBuffer.wrap(s.bytes(), 44, 4).order(java.nio.ByteOrder.LITTLE_ENDIAN)
                    .getInt(), "inuse set while the session writes");
        }
        int lastSync = -1;
        int lastData = -1;
        int headers = 0;
        for (int i = 0; i < s.events.size(); i++) {
            Event e = s.events.get(i);
            if (e.sync()) {
                lastSync = i;
            } else if (e.offset() == 0) {
                headers++;
                assertTrue(headers == 1 ? lastData < 0 : lastData < lastSync, "header " + headers + " at " + i);
            } else if (e.offset() < batEnd) {
                assertTrue(lastData < lastSync, "data synced before the BAT points at it (event " + i + ")");
            } else {
                assertTrue(headers == 1 && lastSync >= 0, "data after the synced inuse header (event " + i + ")");
                lastData = i;
            }
        }
        assertEquals(2, headers);
        assertTrue(s.events.getLast().sync());
        assertEquals(0, ByteBuffer.wrap(s.bytes(), 44, 4).getInt(), "inuse cleared on close");
    }

    /** convert -O parallels: the same file as qemu-img convert -O parallels writes. */
    @Test
    void copyConvertWritesWhatQemuImgConvertWrites() throws Exception {
        Path src = dir.resolve("src.qcow2");
        Qemu.create(src, "qcow2", "20M");
        Qemu.io(src, "qcow2", "write -P 1 0 64k", "write -P 2 3M 2M", "write -z 8M 1M", "write -P 3 19M 512k");
        for (String options : new String[]{"cluster_size=1M", "cluster_size=64k"}) {
            Path q = dir.resolve("q.parallels");
            Path d = dir.resolve("d.parallels");
            Files.deleteIfExists(q);
            Files.deleteIfExists(d);
            Qemu.img("convert", "-O", "parallels", "-o", options, src, q).ok();
            Dm.run("convert", "-O", "parallels", "-o", options, src, d).ok();
            Oracles.assertCheckClean(d, "parallels");
            assertEquals(0, Qemu.img("compare", q, d).exitCode());
            assertEquals(Files.size(q), Files.size(d), options + ": length");
            assertArrayEquals(Files.readAllBytes(q), Files.readAllBytes(d), options + ": bytes");
        }
    }
}
