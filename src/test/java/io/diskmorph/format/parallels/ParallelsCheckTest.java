package io.diskmorph.format.parallels;

import com.fasterxml.jackson.databind.JsonNode;
import io.diskmorph.image.ExitCodes;
import io.diskmorph.testing.Dm;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * check and check -r as qemu-img check -f parallels reports and repairs:
 * the same messages, counters, JSON and exit codes on qemu-made images
 * damaged by hand, compared on twin copies (one repaired by qemu-img, one
 * by diskmorph), and what qemu misses.
 */
class ParallelsCheckTest {
    @TempDir
    Path dir;

    /** 64 KiB clusters: guest clusters 0, 16, 17 at host clusters 1, 2, 3 (the BAT fills cluster 0). */
    private Path sample(String name) {
        Path img = dir.resolve(name);
        Qemu.create(img, "parallels", "4M", "cluster_size=64k");
        Qemu.io(img, "parallels", "write -P 1 0 64k", "write -P 2 1M 100k");
        return img;
    }

    private static void assertSameCheck(Path qemuCopy, Path ourCopy, String... repair) throws Exception {
        Qemu.Result q = Qemu.img(args(repair, qemuCopy));
        Dm.Result d = Dm.run(args(repair, ourCopy));
        assertEquals(q.exitCode(), d.exitCode(), "exit code: " + q.err() + " / " + d.err());
        assertEquals(q.out(), d.out(), "summary");
        assertEquals(messages(q.err()), messages(d.err()), "messages");
        if (repair.length == 0) {
            JsonNode theirs = Qemu.img("check", "--output=json", qemuCopy).json();
            JsonNode ours = Dm.run("check", "--output=json", ourCopy).json();
            for (String key : List.of("corruptions", "leaks", "check-errors", "image-end-offset", "total-clusters",
                    "allocated-clusters", "fragmented-clusters")) {
                assertEquals(theirs.get(key), ours.get(key), "JSON " + key);
            }
            assertEquals(theirs.size(), ours.size(), "JSON keys: " + theirs + " / " + ours);
        }
    }

    private static Object[] args(String[] repair, Path img) {
        return repair.length == 0 ? new Object[]{"check", img} : new Object[]{"check", "-r", repair[0], img};
    }

    private static List<String> messages(String err) {
        return err.lines().filter(l -> l.startsWith("ERROR") || l.startsWith("Repairing")).toList();
    }

    private Path twin(Path img, String name) throws Exception {
        Path t = dir.resolve(name);
        Files.copy(img, t);
        return t;
    }

    @Test
    void cleanAndFragmented() throws Exception {
        Path img = sample("a.parallels");
        assertSameCheck(img, img);
        assertEquals(0, Dm.run("check", img).exitCode());
        // guest cluster 1 before 0 on the host, then 2 after 1: qemu's walk counts two fragmented clusters
        Path f = dir.resolve("f.parallels");
        Qemu.create(f, "parallels", "4M", "cluster_size=64k");
        Qemu.io(f, "parallels", "write -P 1 64k 64k", "write -P 2 0 64k", "write -P 3 128k 64k");
        assertSameCheck(f, f);
        assertEquals(2, Dm.run("check", "--output=json", f).json().get("fragmented-clusters").asInt());
    }

    @Test
    void clusterOutsideTheImageFoundAndRepaired() throws Exception {
        Path img = sample("a.parallels");
        ParallelsFiles.putEntry(img, 16, 0x100); // guest cluster 16 -> host cluster 256 (16 MiB), past the end
        Path ours = twin(img, "b.parallels");
        assertSameCheck(img, ours);
        assertEquals(ExitCodes.CHECK_CORRUPT, Dm.run("check", ours).exitCode());
        assertSameCheck(img, ours, "all");
        assertEquals(0, ParallelsFiles.getU32(ours, 64 + 4 * 16), "entry cleared");
        assertEquals(0, Qemu.img("check", ours).exitCode(), Qemu.img("check", ours).err());
        // qemu's close grows the file to the data_end it computed at open (a qemu bug); diskmorph's does not
        assertEquals(4L << 16, Files.size(ours));
    }

    @Test
    void leakedTailFoundAndCut() throws Exception {
        Path img = sample("a.parallels");
        try (var f = new java.io.RandomAccessFile(img.toFile(), "rw")) {
            f.setLength(f.length() + 200 * 1024);
        }
        Path ours = twin(img, "b.parallels");
        assertSameCheck(img, ours);
        assertEquals(ExitCodes.CHECK_LEAKS, Dm.run("check", ours).exitCode());
        assertSameCheck(img, ours, "leaks");
        assertEquals(Files.size(img), Files.size(ours));
        assertEquals(ParallelsFiles.sha256(img), ParallelsFiles.sha256(ours), "the same file as qemu's repair");
    }

    /** An image not closed correctly: one corruption; -r all clears it; -r leaks reports it and clears it too. */
    @Test
    void notClosedCorrectly() throws Exception {
        Path img = sample("a.parallels");
        ParallelsFiles.putU32(img, 44, ParallelsFiles.INUSE);
        Path ours = twin(img, "b.parallels");
        assertSameCheck(img, ours);
        assertTrue(Dm.run("check", ours).err().contains("ERROR image was not closed correctly"));
        Path qLeaks = twin(img, "c.parallels");
        Path dLeaks = twin(img, "d.parallels");
        assertSameCheck(qLeaks, dLeaks, "leaks");
        assertEquals(ParallelsFiles.sha256(qLeaks), ParallelsFiles.sha256(dLeaks), "-r leaks: the same file");
        assertSameCheck(img, ours, "all");
        assertEquals(ParallelsFiles.sha256(img), ParallelsFiles.sha256(ours), "-r all: the same file");
        assertEquals(0, ParallelsFiles.getU32(ours, 44));
    }

    /** qemu's phantom leak: an empty image whose BAT spans two clusters; -r leaks never cuts the BAT. */
    @Test
    void phantomLeakOfAnEmptyImageWithALongBat() throws Exception {
        Path img = dir.resolve("e.parallels");
        Qemu.create(img, "parallels", "5M", "cluster_size=4k");
        Path ours = twin(img, "o.parallels");
        assertSameCheck(img, ours);
        assertEquals(ExitCodes.CHECK_LEAKS, Dm.run("check", ours).exitCode());
        // qemu cuts inside the BAT, its close puts the length back, and it reports the leak repaired; diskmorph
        // leaves the file alone and reports the leak, as a fresh check of either file does
        Qemu.Result q = Qemu.img("check", "-r", "leaks", img);
        assertEquals(0, q.exitCode(), q.out());
        Dm.Result d = Dm.run("check", "-r", "leaks", ours);
        assertEquals(ExitCodes.CHECK_LEAKS, d.exitCode(), d.out() + d.err());
        assertEquals(8192, Files.size(ours));
        assertEquals(ParallelsFiles.sha256(img), ParallelsFiles.sha256(ours), "the same file as qemu leaves");
        assertEquals(ExitCodes.CHECK_LEAKS, Qemu.img("check", img).exitCode(), "qemu's repair did not stick");
    }

    /** What qemu misses: a cluster over the BAT, a cluster whose bytes run past the end of the file. */
    @Test
    void corruptionsQemuMisses() throws Exception {
        // 4 KiB clusters over 5 MiB: the BAT (5,184 bytes) spans host clusters 0 and 1
        Path over = dir.resolve("o.parallels");
        Qemu.create(over, "parallels", "5M", "cluster_size=4k");
        Qemu.io(over, "parallels", "write -P 1 0 4k");
        ParallelsFiles.putEntry(over, 3, 1); // guest cluster 3 at host cluster 1: inside the BAT
        assertEquals(0, Qemu.img("check", over).exitCode(), "qemu misses it");
        Dm.Result o = Dm.run("check", over);
        assertEquals(ExitCodes.CHECK_CORRUPT, o.exitCode(), o.err());
        assertTrue(o.err().contains("lies over the header and BAT"), o.err());

        Path cut = sample("c.parallels");
        try (FileChannel ch = FileChannel.open(cut, StandardOpenOption.WRITE)) {
            ch.truncate(Files.size(cut) - 4096); // guest cluster 17's host cluster ends past the file
        }
        assertEquals(0, Qemu.img("check", cut).exitCode(), "qemu misses it");
        Dm.Result c = Dm.run("check", cut);
        assertEquals(ExitCodes.CHECK_CORRUPT, c.exitCode(), c.err());
        assertTrue(c.err().contains("ends past the end of the file"), c.err());
    }
}
