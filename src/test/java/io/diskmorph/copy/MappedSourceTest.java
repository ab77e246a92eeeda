package io.diskmorph.copy;

import io.diskmorph.image.DiskImage;
import io.diskmorph.image.Images;
import io.diskmorph.image.OpenOptions;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.lang.foreign.ValueLayout;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.*;

class MappedSourceTest {
    @TempDir
    Path dir;

    /**
     * A read-only open locks through record locks, which vanish when any descriptor of the file in the
     * process closes: mapping the source must not open (and close) one of its own.
     */
    @Test
    void mappingTheSourceKeepsItsLocks() throws Exception {
        Path f = dir.resolve("src.qcow2");
        Qemu.create(f, "qcow2", "16M");
        Qemu.io(f, "qcow2", "write -P 5 0 1M");
        try (DiskImage img = Images.open(f, OpenOptions.forReading())) {
            try (MappedSource m = new MappedSource(img)) {
                MappedSource.Range r = m.map(0, 1 << 20);
                assertNotNull(r, "one data extent of a regular file is mapped");
                assertEquals(5, r.segment.get(ValueLayout.JAVA_BYTE, (1 << 20) - 1));
                r.release();
            }
            Qemu.Result w = Qemu.run("qemu-io", "-f", "qcow2", "-c", "write 0 4k", f.toString());
            assertNotEquals(0, w.exitCode(), "the source is still locked once its mappings are gone: "
                    + w.out() + w.err());
        }
        Qemu.io(f, "qcow2", "write 0 4k"); // and free once the image is closed
    }
}
