package io.diskmorph.image;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/**
 * Extent file names (VMDK descriptors) resolve like backing file names,
 * against the directory of the image as named, but must stay inside it: no
 * absolute names, no ".." that leaves it, no protocols.
 */
class ExtentPathTest {
    @ParameterizedTest
    @CsvSource({
            "d/disk.vmdk, disk-flat.vmdk, d/disk-flat.vmdk",
            "disk.vmdk, disk-flat.vmdk, disk-flat.vmdk",
            "/v/ds/vm/disk.vmdk, disk-s001.vmdk, /v/ds/vm/disk-s001.vmdk",
            "d/disk.vmdk, sub/x.vmdk, d/sub/x.vmdk",
            "d/disk.vmdk, sub/../x.vmdk, d/sub/../x.vmdk",
            "d/disk.vmdk, ./x.vmdk, d/./x.vmdk"})
    void insideTheDirectory(String image, String name, String expected) throws Exception {
        assertEquals(Path.of(expected), Images.extentPath(Path.of(image), name));
    }

    @ParameterizedTest
    @CsvSource({"/etc/shadow", "../other/disk-flat.vmdk", "sub/../../x", "nbd:localhost:10809", "file:x.vmdk",
            "/dev/sda"})
    void outsideIsRefused(String name) {
        UnsupportedFeatureException e = assertThrows(UnsupportedFeatureException.class,
                () -> Images.extentPath(Path.of("d/disk.vmdk"), name));
        assertEquals(ExitCodes.UNSUPPORTED, e.exitCode());
    }

    @ParameterizedTest
    @CsvSource({"''", "'a\u0000b'"})
    void malformedIsCorrupt(String name) {
        assertThrows(CorruptImageException.class, () -> Images.extentPath(Path.of("d/disk.vmdk"), name));
    }
}
