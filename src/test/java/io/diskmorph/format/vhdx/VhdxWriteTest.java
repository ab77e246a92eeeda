package io.diskmorph.format.vhdx;

import io.diskmorph.image.DiskImage;
import io.diskmorph.image.Images;
import io.diskmorph.image.OpenOptions;
import io.diskmorph.testing.Dm;
import io.diskmorph.testing.GuestWrites;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * VHDX images written by diskmorph: the log replayed before the first
 * write as qemu replays it, guest writes into qemu-img-made dynamic and
 * fixed images; qemu-img check clean, content equal to a mirror, and
 * libvhdi's vhdiinfo reads the result.
 */
class VhdxWriteTest {
    @TempDir
    Path dir;

    /** An image whose log holds qemu's writes (qemu-io killed), as in {@link VhdxLogTest}. */
    private Path activeLog() throws Exception {
        Path img = dir.resolve("log.vhdx");
        Qemu.create(img, "vhdx", "4M", "block_size=1M");
        Qemu.run("sh", "-c", "qemu-io -f vhdx -c 'write -P 0x11 0 4k' -c 'write -P 0x22 2M 4k' -c 'sigraise 9' "
                + img + " >/dev/null 2>&1; true");
        long log = VhdxFiles.read(img, VhdxFiles.HEADER1 + 72, 8).getLong(0);
        assertEquals(0x65676f6c, VhdxFiles.read(img, log, 4).getInt(0), "qemu left a log entry");
        byte[] guid = new byte[16];
        VhdxFiles.read(img, log + 32, 16).get(guid);
        for (long h : new long[]{VhdxFiles.HEADER1, VhdxFiles.HEADER2}) {
            VhdxFiles.write(img, h + 48, ByteBuffer.wrap(guid));
        }
        VhdxFiles.fixHeaders(img);
        Qemu.Result info = Qemu.img("info", img);
        assertTrue(info.exitCode() != 0 && info.err().contains("log that needs to be replayed"), info.err());
        return img;
    }

    private byte[] replayedByQemu(Path image) throws Exception {
        Path copy = dir.resolve("qemu-replayed.vhdx");
        Files.copy(image, copy, StandardCopyOption.REPLACE_EXISTING);
        assertEquals(0, Qemu.img("check", "-r", "all", copy).exitCode());
        return raw(copy);
    }

    private byte[] raw(Path image) throws Exception {
        Path raw = dir.resolve("content.raw");
        Files.deleteIfExists(raw);
        Qemu.toRaw(image, "vhdx", raw);
        return Files.readAllBytes(raw);
    }

    /** Opening for writing replays the log: qemu-img opens the file then, check is clean, the content is qemu's. */
    @Test
    void aWritableOpenReplaysTheLogAsQemuDoes() throws Exception {
        Path img = activeLog();
        byte[] expected = replayedByQemu(img);
        try (DiskImage d = Images.open(img, OpenOptions.forWriting().withFormat("vhdx"))) {
            assertEquals(0, ((VhdxImage) d).layout.logGuid.isZero() ? 0 : 1, "the current header names no log");
        }
        Qemu.Result check = Qemu.check(img, "vhdx");
        assertEquals(0, check.exitCode(), check.out() + check.err());
        assertArrayEquals(expected, raw(img));
        assertEquals(0x11, raw(img)[0]);
        Dm.Result ours = Dm.run("check", img);
        assertEquals(0, ours.exitCode(), ours.err());
        assertTrue(!ours.err().contains("log holds"), ours.err());
    }

    /** check -r all replays the log, as qemu-img's does; -r is no longer refused. */
    @Test
    void checkRepairAllReplaysTheLog() throws Exception {
        Path img = activeLog();
        byte[] expected = replayedByQemu(img);
        Dm.Result r = Dm.run("check", "-r", "all", img);
        assertEquals(0, r.exitCode(), r.err());
        assertEquals(0, Qemu.check(img, "vhdx").exitCode());
        assertArrayEquals(expected, raw(img));
        // then it is an in-place source like any other
        Dm.run("convert", "--in-place", "-O", "qcow2", img).ok();
        assertEquals(0, Qemu.check(img, "qcow2").exitCode());
    }

    /**
     * Seeded guest writes (partial blocks, runs across blocks, zero writes)
     * into images qemu-img made: qemu-img check clean, qemu reads what a
     * mirror holds, vhdiinfo reads the file, the header's file and data
     * write GUIDs changed and its sequence number grew.
     */
    @ParameterizedTest(name = "{0} seed={1}")
    @CsvSource({"'block_size=1M',1", "'block_size=1M,block_state_zero=off',2", "'block_size=2M',3",
            "'subformat=fixed,block_size=2M,block_state_zero=off',4", "'subformat=fixed,block_size=1M',5"})
    void guestWritesMatchAMirror(String options, long seed) throws Exception {
        Path img = dir.resolve("w.vhdx");
        long size = (5L << 20) + 512;
        Qemu.create(img, "vhdx", String.valueOf(size), options);
        ByteBuffer header = VhdxFiles.read(img, VhdxFiles.HEADER1, 64);
        long seqBefore = Math.max(header.getLong(8), VhdxFiles.read(img, VhdxFiles.HEADER2, 64).getLong(8));
        String dataGuidBefore = VhdxFiles.guid(header, 32);
        byte[] mirror = new byte[(int) size];
        try (DiskImage d = Images.open(img, OpenOptions.forWriting().withFormat("vhdx"))) {
            GuestWrites.scribble(d, mirror, new Random(seed), 60);
        }
        Qemu.Result check = Qemu.check(img, "vhdx");
        assertEquals(0, check.exitCode(), check.out() + check.err());
        assertArrayEquals(mirror, raw(img));
        Qemu.Result vhdi = Qemu.run("vhdiinfo", img.toString());
        assertEquals(0, vhdi.exitCode(), vhdi.out() + vhdi.err());
        assertTrue(vhdi.out().contains("Media size"), vhdi.out());
        long s1 = VhdxFiles.read(img, VhdxFiles.HEADER1, 64).getLong(8);
        long s2 = VhdxFiles.read(img, VhdxFiles.HEADER2, 64).getLong(8);
        ByteBuffer current = VhdxFiles.read(img, s1 > s2 ? VhdxFiles.HEADER1 : VhdxFiles.HEADER2, 64);
        assertEquals(seqBefore + 1, Math.max(s1, s2), "one header update for the session");
        assertNotEquals(dataGuidBefore, VhdxFiles.guid(current, 32), "a new data write GUID");
        // new blocks lie at MiB boundaries past the metadata, as qemu places them
        for (long block = 0; block < (size + VhdxFiles.blockSize(img) - 1) / VhdxFiles.blockSize(img); block++) {
            long e = VhdxFiles.batEntry(img, VhdxFiles.payloadIndex(img, block));
            if ((e & 7) == 6) {
                assertEquals(0, (e & ~7L) % (1L << 20));
            }
        }
        // qemu writes on top of ours and still agrees
        Qemu.io(img, "vhdx", "write -P 0x5a 1M 8k");
        java.util.Arrays.fill(mirror, 1 << 20, (1 << 20) + 8192, (byte) 0x5a);
        assertArrayEquals(mirror, raw(img));
    }

    /** A differencing image is not written: one line, exit 66, the file byte-identical. */
    @Test
    void differencingWritesAreRefused() throws Exception {
        Path parent = dir.resolve("parent.vhdx");
        Qemu.create(parent, "vhdx", "8M", "block_size=1M");
        Path child = dir.resolve("child.vhdx");
        Qemu.create(child, "vhdx", "8M", "block_size=1M,block_state_zero=off");
        VhdxDifferencingTest.makeDifferencing(child, java.util.Map.of("relative_path", "parent.vhdx",
                "parent_linkage", "{" + VhdxFiles.guid(VhdxFiles.read(parent,
                        VhdxDifferencingTest.currentHeader(parent) + 32, 16), 0) + "}"));
        byte[] before = Files.readAllBytes(child);
        var e = org.junit.jupiter.api.Assertions.assertThrows(io.diskmorph.image.UnsupportedFeatureException.class,
                () -> Images.open(child, OpenOptions.forWriting().withFormat("vhdx")).close());
        assertTrue(e.getMessage().contains("writing to a differencing VHDX is not supported"), e.getMessage());
        assertArrayEquals(before, Files.readAllBytes(child));
    }

    /** Everything of a VHDX file's layout that does not depend on random GUIDs, sequence numbers or the creator. */
    private static String layoutOf(Path f) throws Exception {
        StringBuilder b = new StringBuilder("size=" + Files.size(f));
        ByteBuffer h = VhdxFiles.read(f, VhdxDifferencingTest.currentHeader(f), 4096);
        b.append(" log=").append(h.getInt(68)).append('@').append(h.getLong(72)).append(" logGuid=")
                .append(VhdxFiles.guid(h, 48)).append(" version=").append(h.getShort(66));
        assertArrayEquals(VhdxFiles.read(f, VhdxFiles.REGION1, 65536).array(),
                VhdxFiles.read(f, VhdxFiles.REGION2, 65536).array(), "both region tables equal");
        ByteBuffer rt = VhdxFiles.read(f, VhdxFiles.REGION1, 65536);
        for (int i = 0; i < rt.getInt(8); i++) {
            b.append(" region ").append(VhdxFiles.guid(rt, 16 + 32 * i)).append(' ')
                    .append(rt.getInt(40 + 32 * i)).append('@').append(rt.getLong(32 + 32 * i))
                    .append(" required=").append(rt.getInt(44 + 32 * i));
        }
        long meta = VhdxFiles.region(f, VhdxFiles.METADATA_GUID);
        ByteBuffer mt = VhdxFiles.read(f, meta, 65536);
        for (int i = 0; i < (mt.getShort(10) & 0xffff); i++) {
            int at = 32 + 32 * i;
            String g = VhdxFiles.guid(mt, at);
            int off = mt.getInt(at + 16);
            int len = mt.getInt(at + 20);
            b.append(" item ").append(g).append(' ').append(len).append('@').append(off).append(" flags=")
                    .append(mt.getInt(at + 24));
            if (!g.startsWith("beca12ab")) { // page 83 data: a random GUID
                ByteBuffer v = VhdxFiles.read(f, meta + off, len);
                b.append(" value=").append(java.util.HexFormat.of().formatHex(v.array()));
            }
        }
        long bat = VhdxFiles.region(f, VhdxFiles.BAT_GUID);
        int batLength = rt.getInt(40);
        b.append(" bat=").append(java.util.Arrays.hashCode(VhdxFiles.read(f, bat, batLength).array()));
        return b.toString();
    }

    /**
     * diskmorph create lays a file out as qemu-img 7.2 does (regions,
     * metadata items and values, BAT entries, file length), for each option
     * and qemu's rounding; qemu-img check, vhdiinfo and qemu-img compare
     * against qemu's own file agree. (Size 0 too: qemu 7.2 counts its BAT
     * entries as 0 + (0 - 1) / chunk ratio in 32-bit unsigned arithmetic,
     * reserves a 64 MiB BAT and refuses to open a file with less.)
     */
    @ParameterizedTest(name = "{0} {1}")
    @CsvSource({"100M,''", "10M,'subformat=fixed'", "10M,'subformat=fixed,block_state_zero=off,block_size=2M'",
            "10M,'block_state_zero=off'", "3G,'log_size=1536K,block_size=2M'", "2G,''", "200G,''",
            "5243392,'block_size=1M'", "10M,'block_size=512M'", "10M,'block_size=512K,log_size=3M'", "0,''",
            "1000000,''"})
    void createLaysOutAsQemuImg(String size, String options) throws Exception {
        Path ours = dir.resolve("ours.vhdx");
        Path theirs = dir.resolve("theirs.vhdx");
        if (options.isEmpty()) {
            Dm.run("create", "-q", "-f", "vhdx", ours, size).ok();
            Qemu.img("create", "-q", "-f", "vhdx", theirs, size).ok();
        } else {
            Dm.run("create", "-q", "-f", "vhdx", "-o", options, ours, size).ok();
            Qemu.img("create", "-q", "-f", "vhdx", "-o", options, theirs, size).ok();
        }
        assertEquals(layoutOf(theirs), layoutOf(ours));
        assertEquals(0, Qemu.check(ours, "vhdx").exitCode());
        // libvhdi refuses an empty disk's BAT, qemu-img's as much as ours
        assertEquals(Qemu.run("vhdiinfo", theirs.toString()).exitCode(), Qemu.run("vhdiinfo", ours.toString()).exitCode());
        assertEquals(size.equals("0") ? 1 : 0, Qemu.run("vhdiinfo", ours.toString()).exitCode());
        assertEquals(0, Qemu.img("compare", "-f", "vhdx", "-F", "vhdx", ours, theirs).exitCode());
    }

    /** Options qemu-img refuses are refused in one line before anything is written; -o help lists the options. */
    @Test
    void createOptions() throws Exception {
        Path f = dir.resolve("n.vhdx");
        for (String bad : new String[]{"block_size=3M", "subformat=foo", "cluster_size=64k", "block_state_zero=maybe"}) {
            Dm.Result r = Dm.run("create", "-f", "vhdx", "-o", bad, f, "10M");
            assertEquals(io.diskmorph.image.ExitCodes.USAGE, r.exitCode(), bad + ": " + r.err());
            assertTrue(!Files.exists(f), bad + ": no file");
        }
        assertTrue(Dm.run("create", "-f", "vhdx", "-b", "x.vhdx", "-F", "vhdx", f, "10M").exitCode() != 0);
        assertEquals(io.diskmorph.image.ExitCodes.USAGE, Dm.run("create", "-f", "vhdx", f, "65T").exitCode());
        String help = Dm.run("create", "-f", "vhdx", "-o", "help").ok().out();
        for (String o : new String[]{"subformat", "block_size", "log_size", "block_state_zero"}) {
            assertTrue(help.contains(o), help);
        }
    }

    /** Copy conversion to VHDX through the copy engine: what qemu reads is the source, check clean. */
    @ParameterizedTest(name = "options [{0}]")
    @CsvSource({"''", "'subformat=fixed,block_state_zero=off'", "'block_size=1M'"})
    void copyConversionToVhdx(String options) throws Exception {
        Path src = dir.resolve("src.qcow2");
        Qemu.create(src, "qcow2", "9M");
        Qemu.io(src, "qcow2", "write -P 0x31 0 100k", "write -P 0x32 3M 1M", "write -z 5M 1M",
                "write -P 0x33 9175040 4k");
        Path dst = dir.resolve("dst.vhdx");
        if (options.isEmpty()) {
            Dm.run("convert", "-O", "vhdx", src, dst).ok();
        } else {
            Dm.run("convert", "-O", "vhdx", "-o", options, src, dst).ok();
        }
        assertEquals(0, Qemu.check(dst, "vhdx").exitCode());
        assertEquals(0, Qemu.img("compare", "-f", "qcow2", "-F", "vhdx", src, dst).exitCode());
        assertEquals(0, Qemu.run("vhdiinfo", dst.toString()).exitCode());
    }

    /**
     * A BAT region that is not whole MiBs (the spec's rule) could end inside
     * a 64 KiB BAT page, whose write would reach the metadata after it:
     * writes are refused in one line, the file byte-identical; reads work.
     */
    @Test
    void aBatRegionOfPartialMibsIsNotWritten() throws Exception {
        Path img = dir.resolve("odd.vhdx");
        Qemu.create(img, "vhdx", "4M", "block_size=1M");
        for (long table : new long[]{VhdxFiles.REGION1, VhdxFiles.REGION2}) {
            ByteBuffer t = VhdxFiles.read(img, table, 65536);
            for (int i = 0; i < t.getInt(8); i++) {
                if (VhdxFiles.guid(t, 16 + 32 * i).equals(VhdxFiles.BAT_GUID)) {
                    VhdxFiles.putInt(img, table + 16 + 32 * i + 24, 4096);
                }
            }
        }
        VhdxFiles.fixRegionTables(img);
        byte[] before = Files.readAllBytes(img);
        Dm.run("info", img).ok();
        var e = org.junit.jupiter.api.Assertions.assertThrows(io.diskmorph.image.UnsupportedFeatureException.class,
                () -> Images.open(img, OpenOptions.forWriting().withFormat("vhdx")).close());
        assertTrue(e.getMessage().contains("not whole MiBs"), e.getMessage());
        assertArrayEquals(before, Files.readAllBytes(img));
    }
}
