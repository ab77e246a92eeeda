package io.diskmorph.format.vpc;

import com.fasterxml.jackson.databind.JsonNode;
import io.diskmorph.testing.Dm;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.*;

/**
 * measure -O vpc (qemu-img 7.2 has none): the required size is the size of
 * the file qemu-img convert -O vpc (and diskmorph's copy) makes from the same
 * source, the fully allocated size that of a VHD whose every block is
 * written.
 */
class VpcMeasureTest {
    @TempDir
    Path dir;

    @ParameterizedTest(name = "{0} {1}")
    @CsvSource({"100M, subformat=dynamic", "100M, subformat=fixed", "5000000, subformat=dynamic",
            "100M, subformat=fixed;force_size=on"})
    void requiredIsTheSizeOfACopy(String size, String opts) throws Exception {
        Path src = dir.resolve("s.qcow2");
        Files.deleteIfExists(src);
        Qemu.create(src, "qcow2", size);
        Qemu.io(src, "qcow2", "write -P 1 0 3M", "write -P 2 2100k 8k", "write -z 3M 1M");
        String o = opts.replace(';', ',');
        JsonNode m = Dm.run("measure", "--output=json", "-O", "vpc", "-o", o, src).ok().json();
        Path theirs = dir.resolve("q.vhd");
        Files.deleteIfExists(theirs);
        Qemu.img("convert", "-O", "vpc", "-o", o, src, theirs).ok();
        Path ours = dir.resolve("d.vhd");
        Files.deleteIfExists(ours);
        Dm.run("convert", "-O", "vpc", "-o", o, src, ours).ok();
        assertEquals(Files.size(theirs), m.get("required").asLong(), "qemu-img's copy: " + m);
        assertEquals(Files.size(ours), m.get("required").asLong(), "diskmorph's copy: " + m);
    }

    @Test
    void fullyAllocatedIsEveryBlockWritten() throws Exception {
        Path src = dir.resolve("full.raw");
        Qemu.create(src, "raw", "9M");
        Qemu.io(src, "raw", "write -P 7 0 9M");
        JsonNode m = Dm.run("measure", "--output=json", "-O", "vpc", "--size", "9M").ok().json();
        Path copy = dir.resolve("full.vhd");
        Qemu.img("convert", "-f", "raw", "-O", "vpc", src, copy).ok();
        assertEquals(Files.size(copy), m.get("fully-allocated").asLong(), m.toString());
        assertEquals(Files.size(copy), Dm.run("measure", "--output=json", "-O", "vpc", src).ok().json()
                .get("required").asLong());
    }
}
