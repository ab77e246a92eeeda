package io.diskmorph.image;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.diskmorph.testing.Dm;
import io.diskmorph.testing.Qemu;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Sizes read and printed the way qemu-img does, judged by qemu-img itself. */
class SizesTest {
    @TempDir
    Path dir;

    /** "virtual size: 1.12 KiB (1152 bytes)" for raw files of these lengths, from both tools. */
    @Test
    void humanSizesMatchQemuImgInfo() throws Exception {
        long[] sizes = {0, 1, 512, 999, 1000, 1023, 1024, 1152, 1200, 1536, 10189, 10240, 102348, 1022976,
            1023487, 1023488, 1048064, 1048575, 1048576, 1572864, 10433331, 1073741823, 1073741824L * 1000 - 1,
            (1L << 40) + (1L << 38), 987654321012L, 15L << 40, (1L << 43) + 12345}; // ext4 files end at 16 TiB
        StringBuilder mismatches = new StringBuilder();
        for (long size : sizes) {
            Path f = dir.resolve("s" + size + ".raw");
            try (RandomAccessFile raf = new RandomAccessFile(f.toFile(), "rw")) {
                raf.setLength(size);
            }
            String qemu = line(Qemu.img("info", "-f", "raw", f).out(), "virtual size:");
            String ours = line(Dm.run("info", "-f", "raw", f).out(), "virtual size:");
            if (!qemu.equals(ours)) {
                mismatches.append(size).append(": qemu '").append(qemu).append("' diskmorph '").append(ours)
                        .append("'\n");
            }
            Files.delete(f);
        }
        assertEquals("", mismatches.toString());
    }

    @Test
    void threeSignificantDigitsRoundLikePrintf() {
        assertEquals("1.12", Sizes.threeSignificantDigits(1.125)); // an exact tie: half to even
        assertEquals("1.13", Sizes.threeSignificantDigits(1.1250001));
        assertEquals("0.977", Sizes.threeSignificantDigits(1000 / 1024.0));
        assertEquals("10", Sizes.threeSignificantDigits(9.996));
        assertEquals("100", Sizes.threeSignificantDigits(99.97));
        assertEquals("1e+03", Sizes.threeSignificantDigits(999.7));
        assertEquals("1.5", Sizes.threeSignificantDigits(1.5));
        assertEquals("0", Sizes.threeSignificantDigits(0));
    }

    /**
     * Sizes qemu accepts: the exact byte count qemu-io writes for them
     * ("wrote N/N bytes", the same qemu_strtosz as qemu-img), or for large
     * ones the size of the file qemu-img create makes (rounded up to 512).
     */
    @Test
    void parsedSizesMatchQemu() throws Exception {
        Path io = dir.resolve("io.raw");
        Qemu.img("create", "-q", "-f", "raw", io, "64M");
        String[] small = {"64K", "64k", "1.125k", "0.5M", "1.0001k", "1.0004k", "1.0005k", "1.00049k",
            "0.00048828125k", "5.M", "5.", "1.", "1.0", "1.0b", "10b", "0x10", "0x1000", "0X1F", "4096", " 5M",
            "+5", "+1.5k", "1.1k", "1.1M", "3.3M", "0.3k"};
        for (String s : small) {
            Qemu.Result r = Qemu.run("qemu-io", "-f", "raw", "-c", "write 0 " + s, io.toString());
            String wrote = r.out().contains("wrote ") ? r.out().substring(r.out().indexOf("wrote ") + 6) : "";
            assertTrue(wrote.contains("/"), s + ": " + r.out() + r.err());
            assertEquals(Long.parseLong(wrote.substring(0, wrote.indexOf('/'))), Sizes.parse(s), s);
        }
        for (String s : new String[] {"1.5G", "0.3T", "1.1T"}) {
            Path f = dir.resolve("c.raw");
            Qemu.Result r = Qemu.img("create", "-q", "-f", "raw", f, s);
            assertEquals(0, r.exitCode(), s + ": " + r.err());
            assertEquals(Files.size(f), (Sizes.parse(s) + 511) & ~511L, s);
            Files.delete(f);
        }
        assertEquals(7L << 60, Sizes.parse("7E"));
        assertEquals(Long.MAX_VALUE, Sizes.parse("0x7fffffffffffffff"));
        assertEquals(3L << 60, Sizes.parse("3E"));
        assertEquals("3 EiB", Sizes.human(3L << 60));
        assertEquals("1.5 PiB", Sizes.human(3L << 49));
        for (String s : new String[] {"1.5", "1.5b", "1.9999999b", "1e3", ".5M", "8E", "9E", "0x8000000000000000",
            "0x", "0x1.8M", "12Q", "", "-1", "+", "+-5", "1..5M", "99999999999999999999"}) {
            assertThrows(InvalidRequestException.class, () -> Sizes.parse(s), s);
            if (!s.isBlank() && !s.startsWith("-")) {
                Qemu.Result r = Qemu.img("create", "-q", "-f", "raw", dir.resolve("x.raw"), s);
                assertTrue(r.exitCode() != 0, s + " is refused by qemu-img too");
            }
        }
    }

    private static String line(String out, String prefix) {
        for (String l : out.split("\n")) {
            if (l.startsWith(prefix)) {
                return l;
            }
        }
        return "(no '" + prefix + "' line in: " + out + ")";
    }
}
