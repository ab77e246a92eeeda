package io.diskmorph.format.unsupported;

import com.fasterxml.jackson.databind.JsonNode;
import io.diskmorph.image.ExitCodes;
import io.diskmorph.image.FormatRegistry;
import io.diskmorph.testing.Dm;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.HexFormat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Every format qemu-img 7.2 probes is recognised, never read as raw: each
 * command refuses a format without a driver by name (exit 66) and leaves
 * the file as it was; {@code -f raw} still reads it as bytes. The oracle is
 * qemu-img's own probe (its "format" field, or its driver's error).
 */
class UnsupportedFormatProbeTest {
    @TempDir
    Path dir;

    /** Images qemu-img makes: our probe names the format qemu's does, and every command refuses it. */
    @ParameterizedTest
    @CsvSource({
            "luks, '', LUKS"})
    void imagesQemuMakesAreRefusedByName(String format, String options, String title) throws Exception {
        Path img = dir.resolve("n." + format);
        createWithQemu(img, format, options, "64M");
        JsonNode qemu = Qemu.JSON.readTree(Qemu.img("info", "--output=json", img).ok().out());
        assertEquals(format, qemu.get("format").asText());

        Path raw = dir.resolve("d.raw");
        Qemu.img("create", "-q", "-f", "raw", raw, "64M").ok();
        byte[] before = digest(img);
        for (Object[] cmd : new Object[][]{
                {"info", img}, {"map", img}, {"check", img}, {"compare", raw, img},
                {"measure", "-O", "qcow2", img}, {"convert", "--in-place", "-O", "qcow2", img},
                {"convert", "--in-place", "--dry-run", "-O", "qed", img},
                {"convert", "-O", "qcow2", img, dir.resolve("out.qcow2")}}) {
            Dm.Result r = Dm.run(cmd);
            String what = String.join(" ", java.util.Arrays.stream(cmd).map(String::valueOf).toList());
            int expected = cmd[0].equals("check") ? ExitCodes.CHECK_FAILED
                    : cmd[0].equals("compare") ? ExitCodes.COMPARE_ERROR : ExitCodes.UNSUPPORTED;
            assertEquals(expected, r.exitCode(), what + ": " + r.err());
            assertTrue(r.oneLineError().contains(title) && r.err().contains("not supported yet"), what + ": " + r.err());
        }
        assertEquals(HexFormat.of().formatHex(before), HexFormat.of().formatHex(digest(img)), "file changed");
        assertTrue(!Files.exists(dir.resolve("out.qcow2")), "a refused copy left its target");
        try (var files = Files.list(dir)) {
            assertTrue(files.noneMatch(p -> p.getFileName().toString().contains(".part-")
                    || p.getFileName().toString().endsWith(".dmjournal")), "stray files");
        }
        // -f raw is the explicit way to read the container as bytes, as in qemu-img
        JsonNode asRaw = Dm.run("info", "-f", "raw", "--output=json", img).ok().json();
        assertEquals("raw", asRaw.get("format").asText());
        assertEquals(Qemu.img("info", "-f", "raw", "--output=json", img).ok().json().get("virtual-size").asLong(),
                asRaw.get("virtual-size").asLong());
    }

    /** qemu-img probes a fixed VHD (footer at the end only) as raw, and so do we. */
    @Test
    void fixedVhdProbesAsRawLikeQemu() throws Exception {
        Path img = dir.resolve("f.vhd");
        createWithQemu(img, "vpc", "subformat=fixed", "8M");
        assertEquals("raw", Qemu.JSON.readTree(Qemu.img("info", "--output=json", img).ok().out())
                .get("format").asText());
        assertEquals("raw", Dm.run("info", "--output=json", img).ok().json().get("format").asText());
    }

    /**
     * Formats qemu-img cannot create, built by hand: qemu-img opens them with
     * their driver (and fails there, not as raw), and we refuse them by name.
     */
    @ParameterizedTest
    @CsvSource({"bochs, b.img, Bochs", "cloop, c.img, cloop", "dmg, x.dmg, DMG"})
    void formatsQemuCannotCreateAreRecognised(String format, String name, String title) throws Exception {
        Path img = dir.resolve(name);
        Files.write(img, handMade(format));
        Qemu.Result q = Qemu.img("info", img);
        assertNotEquals(0, q.exitCode(), "qemu-img read " + format + " as raw");
        assertEquals(0, Qemu.img("info", "-f", "raw", img).exitCode());
        Dm.Result r = Dm.run("info", img);
        assertEquals(ExitCodes.UNSUPPORTED, r.exitCode(), r.err());
        assertTrue(r.oneLineError().contains(title), r.err());
    }

    private static byte[] handMade(String format) {
        ByteBuffer b = ByteBuffer.allocate(8192).order(ByteOrder.LITTLE_ENDIAN);
        switch (format) {
            case "bochs" -> {
                b.put(0, "Bochs Virtual HD Image\0".getBytes(StandardCharsets.US_ASCII));
                b.put(32, "Redolog\0".getBytes(StandardCharsets.US_ASCII));
                b.put(48, "Growing\0".getBytes(StandardCharsets.US_ASCII));
                b.putInt(64, 0x00020000);
            }
            case "cloop" -> b.put(0, ("#!/bin/sh\n#V2.0 Format\nmodprobe cloop file=$0 && mount -r -t iso9660 "
                    + "/dev/cloop $1\n").getBytes(StandardCharsets.US_ASCII));
            case "dmg" -> {
                // qemu's dmg probe looks only at the name: any content
            }
            default -> throw new IllegalArgumentException(format);
        }
        return b.array();
    }

    /**
     * The probe rules at their edges, each judged by qemu-img on the same
     * bytes: a vmdk descriptor is recognised only in qemu's first 512 bytes
     * and only with comment or space lines before "version="; a qcow header
     * of version 0 is raw; a LUKS2 header is raw in qemu 7.2.
     */
    @ParameterizedTest
    @CsvSource(delimiter = '|', value = {
            "# Disk DescriptorFile\\nversion=1\\nCID=fffffffe\\n| vmdk",
            "version=2\\n| vmdk",
            "# x\\r\\nversion=3\\r\\n| vmdk",
            "# c\\n   \\nversion=1\\n| vmdk",
            "\\nversion=1\\n| raw",
            "version=4\\n| raw",
            "version = 1\\n| raw",
            "CID=1\\nversion=1\\n| raw",
            "LUKS\\u00ba\\u00be\\u0000\\u0002| raw",
            "LUKS\\u00ba\\u00be\\u0000\\u0001| luks",
            "QFI\\u00fb\\u0000\\u0000\\u0000\\u0000| raw"})
    void probeEdgesAgreeWithQemu(String text, String expected) throws Exception {
        String unescaped = text.replace("\\n", "\n").replace("\\r", "\r");
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < unescaped.length(); i++) {
            if (unescaped.startsWith("\\u", i)) {
                sb.append((char) Integer.parseInt(unescaped.substring(i + 2, i + 6), 16));
                i += 5;
            } else {
                sb.append(unescaped.charAt(i));
            }
        }
        byte[] bytes = java.util.Arrays.copyOf(sb.toString().getBytes(StandardCharsets.ISO_8859_1), 4096);
        Path img = dir.resolve("p.img");
        Files.write(img, bytes);
        Qemu.Result q = Qemu.img("info", "--output=json", img);
        String qemuFormat = q.exitCode() == 0 ? Qemu.JSON.readTree(q.out()).get("format").asText() : "not raw";
        assertEquals(expected.equals("raw") ? "raw" : "not raw", qemuFormat.equals("raw") ? "raw" : "not raw",
                "qemu-img's probe: " + q.err());
        assertEquals(expected, FormatRegistry.probe(ByteBuffer.wrap(bytes), bytes.length, img.toString()).name());
    }

    /** A descriptor whose version line lies past byte 512 is raw to qemu (it probes 512 bytes), and to us. */
    @Test
    void vmdkDescriptorPastQemusProbeBufferIsRaw() throws Exception {
        byte[] text = ("#" + "x".repeat(520) + "\nversion=1\n").getBytes(StandardCharsets.US_ASCII);
        byte[] bytes = java.util.Arrays.copyOf(text, 4096);
        Path img = dir.resolve("long.img");
        Files.write(img, bytes);
        assertEquals("raw", Qemu.JSON.readTree(Qemu.img("info", "--output=json", img).ok().out())
                .get("format").asText());
        assertEquals("raw", FormatRegistry.probe(ByteBuffer.wrap(bytes), bytes.length, null).name());
    }

    /** An empty file is raw before any probe runs (qemu), even when it is named like a dmg. */
    @Test
    void emptyFileIsRaw() throws Exception {
        Path img = dir.resolve("empty.dmg");
        Files.write(img, new byte[0]);
        assertEquals("raw", Dm.run("info", "--output=json", img).ok().json().get("format").asText());
    }

    /** The raw driver's write guard: a probed raw image refuses guest writes that would make it a vmdk. */
    @Test
    void probedRawRefusesWritingAnUnsupportedMagic() throws Exception {
        Path img = dir.resolve("g.raw");
        Qemu.img("create", "-q", "-f", "raw", img, "1M").ok();
        try (var d = io.diskmorph.image.Images.open(img, io.diskmorph.image.OpenOptions.forWriting())) {
            ByteBuffer kdmv = ByteBuffer.wrap(java.util.Arrays.copyOf("KDMV".getBytes(StandardCharsets.US_ASCII), 512));
            org.junit.jupiter.api.Assertions.assertThrows(io.diskmorph.image.ImageException.class,
                    () -> d.write(kdmv, 0));
        }
    }

    static void createWithQemu(Path img, String format, String options, String size) {
        Object[] args = format.equals("luks")
                ? new Object[]{"create", "-q", "-f", "luks", "--object", "secret,id=s0,data=pw", "-o",
                "key-secret=s0,iter-time=10", img, size}
                : options.isEmpty() ? new Object[]{"create", "-q", "-f", format, img, size}
                : new Object[]{"create", "-q", "-f", format, "-o", options, img, size};
        Qemu.img(args).ok();
    }

    private static byte[] digest(Path p) throws Exception {
        MessageDigest md = MessageDigest.getInstance("SHA-256");
        md.update(Files.readAllBytes(p));
        return md.digest();
    }
}
