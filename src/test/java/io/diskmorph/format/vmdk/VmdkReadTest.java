package io.diskmorph.format.vmdk;

import io.diskmorph.testing.Dm;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Images qemu-img 7.2 makes, in every subformat it writes: diskmorph's info
 * (format-specific part included), map, guest bytes and check agree with
 * qemu-img's, and vmdkinfo agrees where it reports.
 */
class VmdkReadTest {
    @TempDir
    static Path shared;
    @TempDir
    Path dir;

    /** 40 MiB of data, partial grains, written zeros and holes, data past the first grain table (32 MiB). */
    static Path sample;
    static final long SIZE = 40L << 20;

    @BeforeAll
    static void sample() {
        sample = VmdkFiles.sampleRaw(shared, "sample.raw", String.valueOf(SIZE), VmdkFiles.sampleWrites(SIZE));
    }

    /** Empty images of every subformat qemu-img creates. */
    @ParameterizedTest
    @CsvSource({"monolithicSparse", "monolithicFlat", "twoGbMaxExtentSparse", "twoGbMaxExtentFlat",
            "streamOptimized"})
    void emptyImagesReadLikeQemu(String subformat) throws Exception {
        Path img = dir.resolve("e.vmdk");
        Qemu.create(img, "vmdk", "64M", "subformat=" + subformat);
        VmdkFiles.assertReadsLikeQemu(img, dir);
    }

    /** qemu-img convert of data, zeros and holes into each subformat, and the create options that change the file. */
    @ParameterizedTest
    @CsvSource(delimiter = '|', value = {
            "subformat=monolithicSparse",
            "subformat=monolithicFlat",
            "subformat=twoGbMaxExtentSparse",
            "subformat=twoGbMaxExtentFlat",
            "subformat=streamOptimized",
            "zeroed_grain=on",
            "subformat=twoGbMaxExtentSparse,zeroed_grain=on",
            "adapter_type=lsilogic,hwversion=6",
            "adapter_type=buslogic,compat6=on",
            "adapter_type=legacyESX,toolsversion=12345"})
    void convertedImagesReadLikeQemu(String options) throws Exception {
        Path img = dir.resolve("c.vmdk");
        Qemu.img("convert", "-f", "raw", "-O", "vmdk", "-o", options, sample, img).ok();
        VmdkFiles.assertReadsLikeQemu(img, dir);
        assertEquals(0, Dm.run("compare", img, sample).exitCode());
    }

    /** Guest writes by qemu-io: partial grains, zero writes (zeroed grains with zeroed_grain=on), the last sector. */
    @ParameterizedTest
    @CsvSource({"off", "on"})
    void qemuWritesReadLikeQemu(String zeroedGrain) throws Exception {
        Path img = dir.resolve("w.vmdk");
        long size = (64L << 20) + 3 * 512; // not a multiple of the grain
        Qemu.create(img, "vmdk", String.valueOf(size), "zeroed_grain=" + zeroedGrain);
        Qemu.io(img, "vmdk", "write -P 1 0 128k", "write -z 0 64k", "write -P 2 100k 3k", "write -z 1M 128k",
                "write -P 3 " + (33L << 20) + " 64k", "write -z " + (33L << 20) + " 64k",
                "write -P 4 " + (size - 1024) + " 1024");
        VmdkFiles.assertReadsLikeQemu(img, dir);
    }

    /** A disk over 4 GiB: twoGbMaxExtent* make three extent files; map and info name each. */
    @ParameterizedTest
    @CsvSource({"twoGbMaxExtentSparse", "twoGbMaxExtentFlat"})
    void splitDisksNameEachExtent(String subformat) throws Exception {
        Path img = dir.resolve("split.vmdk");
        Qemu.create(img, "vmdk", "5G", "subformat=" + subformat);
        Qemu.io(img, "vmdk", "write -P 7 " + ((2L << 30) - 4096) + " 8k", "write -P 8 " + (4L << 30) + " 64k",
                "write -z " + (1L << 30) + " 64k");
        VmdkFiles.assertSameInfo(img);
        VmdkFiles.assertSameMap(img);
        Path raw = dir.resolve("split.raw");
        Qemu.img("convert", "-O", "raw", img, raw).ok();
        assertEquals(0, Dm.run("compare", img, raw).exitCode());
        assertEquals(Qemu.img("check", img).exitCode(), Dm.run("check", img).exitCode());
        VmdkFiles.assertVmdkinfoAgrees(img);
    }

    /** The human info output: qemu's nested "Format specific information". */
    @Test
    void humanInfoListsExtentsAsQemu() throws Exception {
        Path img = dir.resolve("h.vmdk");
        Qemu.create(img, "vmdk", "64M", "subformat=twoGbMaxExtentSparse");
        String ours = Dm.run("info", img).ok().out();
        String qemu = Qemu.img("info", img).ok().out();
        String tail = qemu.substring(qemu.indexOf("Format specific information:"));
        assertEquals(tail, ours.substring(ours.indexOf("Format specific information:")));
        assertEquals(Files.size(img) > 0, true);
    }
}
