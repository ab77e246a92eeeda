package io.diskmorph.format.vpc;

import com.fasterxml.jackson.databind.JsonNode;
import io.diskmorph.image.ExitCodes;
import io.diskmorph.testing.Dm;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * What VHD sizes and layouts mean, judged by qemu-img 7.2 on the same
 * bytes: the virtual size by the creator application (CHS geometry or
 * current_size), the largest geometry, images diskmorph creates compared
 * byte for byte with qemu-img create's (but for the time stamp, UUID and
 * checksum), and vhdiinfo (libvhdi) reading what diskmorph writes.
 */
class VpcReadTest {
    @TempDir
    Path dir;

    private static long qemuSize(Path img) {
        return Qemu.img("info", "-f", "vpc", "--output=json", img).ok().json().get("virtual-size").asLong();
    }

    private static long dmSize(Path img) {
        return Dm.run("info", "-f", "vpc", "--output=json", img).ok().json().get("virtual-size").asLong();
    }

    /**
     * A 10 MiB request (CHS 10514432 bytes) whose current_size says 8 MiB:
     * qemu takes the geometry for "vpc "/"qemu" and unknown creators,
     * current_size for Hyper-V, qemu's force_size, Disk2vhd, XenConverter
     * and XenServer, and for the largest geometry whatever the creator.
     */
    @ParameterizedTest
    @CsvSource({"'vpc ', false, 10514432", "'qemu', false, 10514432", "'abcd', false, 10514432",
            "'win ', false, 8388608", "'qem2', false, 8388608", "'d2v ', false, 8388608",
            "'CTXS', false, 8388608", "'tap\u0000', false, 8388608", "'qemu', true, 8388608"})
    void virtualSizeFollowsTheCreatorApplication(String app, boolean maxGeometry, long expected) throws Exception {
        for (String sub : new String[]{"dynamic", "fixed"}) {
            Path img = dir.resolve(sub + ".vhd");
            Files.deleteIfExists(img);
            Qemu.create(img, "vpc", "10M", "subformat=" + sub);
            VpcFiles.editFooters(img, b -> {
                b.put(VpcFooter.OFF_CREATOR_APP, app.getBytes(StandardCharsets.ISO_8859_1));
                b.putLong(VpcFooter.OFF_CURRENT_SIZE, 8L << 20);
                if (maxGeometry) {
                    b.putShort(VpcFooter.OFF_CYLINDERS, (short) 65535).put(VpcFooter.OFF_HEADS, (byte) 16)
                            .put(VpcFooter.OFF_SECTORS, (byte) 255);
                }
            });
            assertEquals(expected, qemuSize(img), "qemu-img, " + sub + " '" + app + "'");
            assertEquals(expected, dmSize(img), "diskmorph, " + sub + " '" + app + "'");
        }
    }

    /** Sizes qemu rounds to a geometry, the largest geometry's sizes, and force_size, in both subformats. */
    @ParameterizedTest
    @CsvSource({"1, ''", "5000000, ''", "10M, ''", "127G, ''", "128G, ''", "200G, ''", "5000000, force_size=on",
            "0, ''", "10M, subformat=fixed", "5000000, 'subformat=fixed,force_size=on'", "1, subformat=fixed"})
    void createLaysOutWhatQemuImgCreates(String size, String options) throws Exception {
        Path q = dir.resolve("q.vhd");
        Path d = dir.resolve("d.vhd");
        Files.deleteIfExists(q);
        Files.deleteIfExists(d);
        if (options.isEmpty()) {
            Qemu.create(q, "vpc", size);
            Dm.run("create", "-q", "-f", "vpc", d, size).ok();
        } else {
            Qemu.create(q, "vpc", size, options);
            Dm.run("create", "-q", "-f", "vpc", "-o", options, d, size).ok();
        }
        assertEquals(Files.size(q), Files.size(d), "file length");
        assertEquals(qemuSize(q), qemuSize(d), "qemu-img's virtual size of both");
        assertEquals(qemuSize(q), dmSize(d), "diskmorph's virtual size");
        long n = Files.size(q);
        // the footers (end, and 0 for dynamic) differ in time stamp, checksum and UUID only
        for (long at : new long[]{0, n - 512}) {
            byte[] a = read(q, at, 512);
            byte[] b = read(d, at, 512);
            for (byte[] f : new byte[][]{a, b}) {
                java.util.Arrays.fill(f, VpcFooter.OFF_TIMESTAMP, VpcFooter.OFF_TIMESTAMP + 4, (byte) 0);
                java.util.Arrays.fill(f, VpcFooter.OFF_CHECKSUM, VpcFooter.OFF_UUID + 16, (byte) 0);
            }
            assertArrayEquals(a, b, "footer at " + at);
        }
        if (n > 1536 && !options.contains("fixed")) {
            assertArrayEquals(read(q, 512, (int) (n - 1024)), read(d, 512, (int) (n - 1024)),
                    "dynamic header and BAT");
        }
        assertEquals(0, Qemu.img("compare", "-f", "vpc", "-F", "vpc", q, d).exitCode(), "same content");
    }

    private static byte[] read(Path p, long at, int n) throws Exception {
        try (var ch = java.nio.channels.FileChannel.open(p)) {
            java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(n);
            ch.read(b, at);
            return b.array();
        }
    }

    /** create refuses what qemu-img refuses, before it writes a file. */
    @Test
    void createRefusesWhatQemuRefuses() throws Exception {
        Path d = dir.resolve("x.vhd");
        for (Object[] c : new Object[][]{{"subformat=foo", "1M"}, {"", "2041G"}, {"backing_file=b.vhd", "1M"},
                {"azure=on", "5000000"}, {"azure=maybe", "1M"}, {"azure=on,subformat=dynamic", "1M"}}) {
            Dm.Result r = c[0].toString().isEmpty() ? Dm.run("create", "-q", "-f", "vpc", d, c[1])
                    : Dm.run("create", "-q", "-f", "vpc", "-o", c[0], d, c[1]);
            assertNotEquals(0, r.exitCode(), c[0] + " " + c[1]);
            r.oneLineError();
            assertTrue(!Files.exists(d), "no file left by a refused create: " + c[0]);
        }
        Dm.Result azure = Dm.run("create", "-q", "-f", "vpc", "-o", "azure=on", d, "5000000");
        assertTrue(azure.err().contains("5242880"), "names the size Azure needs: " + azure.err());
    }

    /** azure=grow: a fixed VHD of the next whole MiB, sized by current_size, as vhdiinfo and qemu read it. */
    @Test
    void azureGrowMakesAWholeMiBFixedDisk() throws Exception {
        Path d = dir.resolve("a.vhd");
        Dm.run("create", "-q", "-f", "vpc", "-o", "azure=grow", d, "5000000").ok();
        assertEquals(5L << 20, qemuSize(d));
        assertEquals((5L << 20) + 512, Files.size(d));
        String info = Qemu.run("vhdiinfo", d.toString()).ok().out();
        assertTrue(info.contains("Fixed") && info.contains("(5242880 bytes)"), info);
    }

    /** What diskmorph writes (create, then a copy conversion's guest writes) vhdiinfo reads as qemu-img does. */
    @Test
    void vhdiinfoReadsWhatDiskmorphWrites() throws Exception {
        Path raw = dir.resolve("content.raw");
        Qemu.create(raw, "raw", "9M");
        Qemu.io(raw, "raw", "write -P 0x11 0 64k", "write -P 0x22 3M 1M", "write -P 0x33 8M 512");
        for (String sub : new String[]{"dynamic", "fixed"}) {
            Path d = dir.resolve(sub + ".vhd");
            Dm.run("convert", "-f", "raw", "-O", "vpc", "-o", "subformat=" + sub + ",force_size=on", raw, d).ok();
            assertEquals(0, Qemu.img("compare", "-f", "vpc", "-F", "raw", d, raw).exitCode(), sub);
            String info = Qemu.run("vhdiinfo", d.toString()).ok().out();
            assertTrue(info.contains(sub.equals("fixed") ? "Fixed" : "Dynamic"), info);
            assertTrue(info.contains("(9437184 bytes)"), info);
            JsonNode check = Dm.run("check", "-f", "vpc", "--output=json", d).ok().json();
            assertEquals(0, check.path("corruptions").asLong(), check.toString());
        }
    }

    /** info, JSON and human, equals qemu-img's for qemu-made images of both subformats. */
    @Test
    void infoEqualsQemuImgs() throws Exception {
        for (String sub : new String[]{"dynamic", "fixed"}) {
            Path img = dir.resolve(sub + ".vhd");
            Qemu.create(img, "vpc", "5000000", "subformat=" + sub);
            Qemu.io(img, "vpc", "write -P 0x11 1M 64k");
            assertEquals(Qemu.img("info", "-f", "vpc", "--output=json", img).ok().json(),
                    Dm.run("info", "-f", "vpc", "--output=json", img).ok().json(), sub);
            assertEquals(Qemu.img("info", "-f", "vpc", img).ok().out(), Dm.run("info", "-f", "vpc", img).ok().out(),
                    sub);
        }
    }

    /** The probe is qemu's: "conectix" at 0 only; a fixed VHD is raw unless named (and -f vpc reads it). */
    @Test
    void fixedVhdIsRawUntilNamed() throws Exception {
        Path f = dir.resolve("f.vhd");
        Qemu.create(f, "vpc", "8M", "subformat=fixed");
        assertEquals("raw", Dm.run("info", "--output=json", f).ok().json().get("format").asText());
        assertEquals(qemuSize(f), dmSize(f));
        assertEquals(ExitCodes.OK, Dm.run("map", "-f", "vpc", f).exitCode());
    }
}
