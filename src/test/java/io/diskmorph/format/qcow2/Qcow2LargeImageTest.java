package io.diskmorph.format.qcow2;

import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Creating sparse images of TiB virtual size, or with 16 M preallocated
 * clusters, in a JVM with a 16 MiB heap: the builder streams its tables and
 * keeps one bit per host cluster. About 10 s on an idle machine (the 64 GiB
 * case writes 128 MiB of L2 tables, and qemu-img check reads them).
 */
@Tag("slow")
class Qcow2LargeImageTest {
    @TempDir
    Path dir;

    @ParameterizedTest(name = "{0} -o {1}")
    @CsvSource(delimiter = ';', value = {
            "4T; cluster_size=64k",
            "4T; cluster_size=4k",
            "64G; cluster_size=4k,preallocation=metadata"})
    void buildsWithASmallHeap(String size, String options) throws Exception {
        Path img = dir.resolve("big.qcow2");
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java")
                        .toString(), "-Xmx16m", "--enable-native-access=ALL-UNNAMED", "-cp",
                System.getProperty("java.class.path"), "io.diskmorph.cli.Main", "create", "-q", "-f", "qcow2", "-o",
                options, img.toString(), size));
        Qemu.Result r = Qemu.run(cmd.toArray(String[]::new));
        assertEquals(0, r.exitCode(), r.err() + r.out());
        Oracle.assertCheckClean(img);
        Oracle.assertInfoEquals(img);
    }
}
