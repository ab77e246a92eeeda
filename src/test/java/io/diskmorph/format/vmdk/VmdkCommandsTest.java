package io.diskmorph.format.vmdk;

import io.diskmorph.image.DiskImage;
import io.diskmorph.image.ExitCodes;
import io.diskmorph.image.FormatRegistry;
import io.diskmorph.image.ImageException;
import io.diskmorph.image.ImageFormat;
import io.diskmorph.image.Images;
import io.diskmorph.image.OpenOptions;
import io.diskmorph.testing.Dm;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Every read-only command on VMDK sources: copy conversion to each format
 * diskmorph writes (checked with qemu-img compare and check), measure and
 * compare as qemu-img does them; and the writing commands refused in one line
 * (exit 66) with nothing changed or left behind (in-place conversion from
 * VMDK: VmdkInPlaceTest).
 */
class VmdkCommandsTest {
    @TempDir
    static Path shared;
    @TempDir
    Path dir;

    static Path raw;

    @BeforeAll
    static void sample() {
        raw = VmdkFiles.sampleRaw(shared, "sample.raw", String.valueOf(40L << 20), VmdkFiles.sampleWrites(40L << 20));
    }

    private Path vmdk(String subformat) {
        Path img = dir.resolve(subformat + ".vmdk");
        Qemu.img("convert", "-O", "vmdk", "-o", "subformat=" + subformat, raw, img).ok();
        return img;
    }

    /** The formats diskmorph writes, from the registry. */
    private static List<String> writableFormats() {
        return FormatRegistry.formats().stream().filter(f -> f.supported() && f.canWrite()).map(ImageFormat::name)
                .toList();
    }

    @ParameterizedTest
    @CsvSource({"monolithicSparse", "streamOptimized", "twoGbMaxExtentFlat", "twoGbMaxExtentSparse"})
    void convertsToEveryFormat(String subformat) throws Exception {
        Path src = vmdk(subformat);
        for (String to : writableFormats()) {
            Path dst = dir.resolve("out." + to);
            Dm.run("convert", "-O", to, src, dst).ok();
            assertEquals(0, Qemu.compare(src, dst), subformat + " -> " + to);
            if (!to.equals("raw")) {
                Qemu.Result check = Qemu.img("check", dst);
                if (check.exitCode() == 63 && check.err().contains("does not support checks")) {
                    Dm.run("check", "-f", to, dst).ok(); // qemu-img has no check for it (vpc, qcow): ours
                } else {
                    assertEquals(0, check.exitCode(), subformat + " -> " + to + ": " + check.err());
                }
            }
        }
        Path compressed = dir.resolve("c.qcow2");
        Dm.run("convert", "-c", "-O", "qcow2", src, compressed).ok();
        assertEquals(0, Qemu.compare(src, compressed));
    }

    @ParameterizedTest
    @CsvSource({"monolithicSparse", "streamOptimized", "monolithicFlat"})
    void measureAsQemu(String subformat) throws Exception {
        Path src = vmdk(subformat);
        for (String to : new String[]{"qcow2", "raw"}) {
            assertEquals(Qemu.img("measure", "--output=json", "-O", to, src).ok().json(),
                    Dm.run("measure", "--output=json", "-O", to, src).ok().json(), subformat + " -> " + to);
        }
    }

    /**
     * compare and compare -s between VMDK images and the raw and qcow2 images
     * of the same content, and between the subformats: the same verdict,
     * output and exit code as qemu-img (strict mode compares QEMU's block
     * status, whose extent ends come from the VMDK driver's answers).
     */
    @Test
    void compareAsQemu() throws Exception {
        Path qcow2 = dir.resolve("s.qcow2");
        Qemu.img("convert", "-O", "qcow2", raw, qcow2).ok();
        List<Path> images = List.of(vmdk("monolithicSparse"), vmdk("streamOptimized"), vmdk("monolithicFlat"),
                raw, qcow2);
        Path other = dir.resolve("other.raw");
        Files.copy(raw, other);
        Qemu.io(other, "raw", "write -P 0x99 " + (5L << 20) + " 512");
        for (Path a : images) {
            for (Path b : List.of(images.get(0), images.get(2), raw, other)) {
                for (String[] mode : new String[][]{{}, {"-s"}}) {
                    Object[] args = mode.length == 0 ? new Object[]{"compare", a, b} : new Object[]{"compare", "-s", a, b};
                    Qemu.Result q = Qemu.img(args);
                    Dm.Result d = Dm.run(args);
                    String what = String.join(" ", java.util.Arrays.stream(args).map(String::valueOf).toList());
                    assertEquals(q.exitCode(), d.exitCode(), what + ": " + q.out() + q.err() + " / " + d.out() + d.err());
                    assertEquals(q.out(), d.out(), what);
                }
            }
        }
    }

    /** A descriptor written on Windows (CRLF) reads as qemu reads it. */
    @Test
    void crlfDescriptor() throws Exception {
        Path img = vmdk("monolithicFlat");
        Files.writeString(img, Files.readString(img).replace("\n", "\r\n"));
        VmdkFiles.assertReadsLikeQemu(img, dir);
    }

    // ---- refusals -------------------------------------------------------------------------

    /**
     * A create whose options VMDK refuses leaves an existing file as it was and
     * makes no new one (the options are judged before IMAGE is opened).
     */
    @Test
    void refusedCreateOptionsTouchNothing() throws Exception {
        Path existing = dir.resolve("keep.vmdk");
        Files.writeString(existing, "not to be truncated");
        for (String options : List.of("subformat=bogus", "adapter_type=scsi", "compat6=on,hwversion=7",
                "subformat=monolithicFlat,zeroed_grain=on", "cluster_size=4096")) {
            String before = VmdkFiles.sha256(existing);
            List<Path> files;
            try (var s = Files.list(dir)) {
                files = s.sorted().toList();
            }
            Dm.Result r = Dm.run("create", "-f", "vmdk", "-o", options, existing, "64M");
            assertNotEquals(0, r.exitCode(), options);
            r.oneLineError();
            assertEquals(before, VmdkFiles.sha256(existing), options);
            Dm.Result n = Dm.run("create", "-f", "vmdk", "-o", options, dir.resolve("new.vmdk"), "64M");
            assertEquals(r.exitCode(), n.exitCode(), options);
            try (var s = Files.list(dir)) {
                assertEquals(files, s.sorted().toList(), "files appeared or vanished: " + options);
            }
        }
    }

    /** Through the library: guest writes on a read-only open are refused and change nothing. */
    @Test
    void writesOnReadOnlyOpensAreRefused() throws Exception {
        Path src = vmdk("monolithicSparse");
        String before = VmdkFiles.sha256(src);
        try (DiskImage img = Images.open(src, OpenOptions.forReading())) {
            assertTrue(img.isReadOnly());
            assertThrows(ImageException.class, () -> img.write(ByteBuffer.allocate(512), 0));
            assertThrows(ImageException.class, () -> img.writeZeroes(0, 65536, true));
        }
        assertEquals(before, VmdkFiles.sha256(src));
    }
}
