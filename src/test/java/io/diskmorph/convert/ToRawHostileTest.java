package io.diskmorph.convert;

import io.diskmorph.image.DiskImage;
import io.diskmorph.image.ImageException;
import io.diskmorph.image.Images;
import io.diskmorph.storage.MemoryStorage;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Damaged sources of the in-place conversion to raw: bytes of the header
 * and tables of a small image flipped at random, a few hundred times. Each
 * run either converts (and the raw file holds what the damaged image read
 * before) or is refused with one line, the file byte-identical; never an
 * internal error.
 */
class ToRawHostileTest {
    @TempDir
    Path dir;

    @ParameterizedTest(name = "{0}")
    @CsvSource({"qcow2, cluster_size=4k", "qed, cluster_size=4k;table_size=2", "vmdk, zeroed_grain=on"})
    void damagedTablesAreConvertedOrRefused(String format, String opts) throws IOException {
        Path p = dir.resolve("h." + format);
        Qemu.create(p, format, "256k", opts.replace(';', ','));
        Qemu.io(p, format, "write -P 3 200k 12k", "write -P 4 0 4k", "write -P 5 64k 8k", "write -z 100k 4k");
        byte[] clean = Files.readAllBytes(p);
        Random random = new Random(17);
        int converted = 0;
        int refused = 0;
        for (int round = 0; round < 300; round++) {
            byte[] image = clean.clone();
            int flips = 1 + random.nextInt(3);
            for (int k = 0; k < flips; k++) {
                int at = random.nextInt(Math.min(image.length, 6 * 4096)); // header and the first tables
                image[at] ^= (byte) (1 << random.nextInt(8));
            }
            byte[] guest = guestOf(image, format);
            CrashSim sim = new CrashSim(Map.of(CrashChecker.IMAGE, image));
            String what = format + " round " + round;
            try {
                InPlaceConverter.convert(CrashChecker.file(sim), new InPlaceConverter.Request(format, "raw", Map.of(),
                        false), InPlaceConverter.Progress.NONE);
                byte[] after = sim.crashState(sim.log.size(), CrashSim.FileFate.NONE, true, 0).get(CrashChecker.IMAGE);
                assertNotNull(guest, what + ": converted an image that cannot be read");
                assertArrayEquals(guest, after, what + ": the raw file is what the image read");
                converted++;
            } catch (ImageException e) {
                assertTrue(e.getMessage() != null && !e.getMessage().isBlank() && e.getMessage().indexOf('\n') < 0,
                        what + ": one line: " + e.getMessage());
                assertTrue(sim.log.stream().noneMatch(op -> op instanceof CrashSim.Write || op instanceof CrashSim.Punch
                        || op instanceof CrashSim.Truncate), what + ": refused after writing: " + e.getMessage());
                refused++;
            } catch (RuntimeException e) {
                throw new AssertionError(what + ": internal error " + e, e);
            }
        }
        System.out.printf("%s -> raw, damaged: %d converted, %d refused%n", format, converted, refused);
        assertTrue(converted > 0 && refused > 0, converted + " converted, " + refused + " refused");
    }

    /** The guest bytes the damaged image reads, or null when it cannot be read. */
    private static byte[] guestOf(byte[] image, String format) {
        try (DiskImage img = Images.open(MemoryStorage.of("h", image), format, true)) {
            byte[] g = new byte[Math.toIntExact(img.virtualSize())];
            img.read(ByteBuffer.wrap(g), 0);
            return g;
        } catch (IOException | RuntimeException e) {
            return null;
        }
    }
}
