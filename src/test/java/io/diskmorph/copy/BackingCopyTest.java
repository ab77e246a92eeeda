package io.diskmorph.copy;

import com.fasterxml.jackson.databind.JsonNode;
import io.diskmorph.testing.Dm;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.*;

/**
 * convert -B: the target is an overlay of the given backing file and gets
 * only what the source's top layer holds (qemu-img's rule: the backing file
 * is taken to hold what the source's backing chain holds). Judged through
 * the chain: qemu-img compare of source and target, and qemu-img map of the
 * target chain equal to that of qemu-img convert -B's output.
 */
class BackingCopyTest {
    @TempDir
    Path dir;

    /** base (qcow2, 8M) <- top (fmt): top has data, zero clusters, zeros written as data, and ranges left to base. */
    private Path chain(String topFormat, String baseSize) {
        Path base = dir.resolve("base.qcow2");
        Qemu.create(base, "qcow2", baseSize);
        Qemu.io(base, "qcow2", "write -P 1 0 1M", "write -P 2 2M 1M");
        Path top = dir.resolve("top." + topFormat);
        Qemu.img("create", "-q", "-f", topFormat, "-b", "base.qcow2", "-F", "qcow2", top, "8M").ok();
        Qemu.io(top, topFormat, "write -P 4 512k 1M", "write -z 2M 64k", "write -P 0 3M 128k",
                "write -P 5 7M 100k", "write -P 0 5M 4k");
        return top;
    }

    @Test
    void onlyTheTopLayerIsCopiedLikeQemu() throws Exception {
        for (String topFormat : new String[]{"qcow2", "qed"}) {
            Path top = chain(topFormat, "8M");
            for (String t : new String[]{"qcow2", "qed"}) {
                Path ours = CopyOracle.convertBoth(dir, top, topFormat, t, topFormat + "-b",
                        "-B", "base.qcow2", "-F", "qcow2");
                JsonNode info = Qemu.img("info", "--output=json", ours).ok().json();
                assertEquals("base.qcow2", info.get("backing-filename").asText());
                if (t.equals("qcow2")) { // QED records a backing format only when it is raw
                    assertEquals("qcow2", info.get("backing-filename-format").asText());
                }
            }
        }
    }

    @Test
    void versionTwoTargetsWriteZerosAsData() throws Exception {
        Path top = chain("qcow2", "8M");
        CopyOracle.convertBoth(dir, top, "qcow2", "qcow2", "v2", "-B", "base.qcow2", "-F", "qcow2",
                "-o", "compat=0.10");
    }

    @Test
    void zerosPastTheEndOfTheBackingFileAreNotWritten() throws Exception {
        Path top = chain("qcow2", "4M"); // the top reaches past its backing file
        CopyOracle.convertBoth(dir, top, "qcow2", "qcow2", "short", "-B", "base.qcow2", "-F", "qcow2");
    }

    @Test
    void aSourceWithoutBackingOverANewBacking() throws Exception {
        Path base = dir.resolve("base.qcow2");
        Qemu.create(base, "qcow2", "8M");
        Qemu.io(base, "qcow2", "write -P 1 0 8M");
        Path src = dir.resolve("plain.qcow2");
        Qemu.create(src, "qcow2", "8M");
        Qemu.io(src, "qcow2", "write -P 7 1M 1M", "write -P 0 3M 64k");
        // the source's unallocated ranges read as zeros: the target must hide the backing file there
        CopyOracle.convertBoth(dir, src, "qcow2", "qcow2", "plain", "-B", "base.qcow2", "-F", "qcow2");
        CopyOracle.convertBoth(dir, src, "qcow2", "qed", "plain", "-o", "backing_file=base.qcow2,backing_fmt=qcow2");
    }

    @Test
    void compressedAndFullyAllocatedOverlays() throws Exception {
        Path top = chain("qcow2", "8M");
        CopyOracle.convertBoth(dir, top, "qcow2", "qcow2", "c", "-c", "-B", "base.qcow2", "-F", "qcow2");
        CopyOracle.convertBoth(dir, top, "qcow2", "qcow2", "s0", "-S", "0", "-B", "base.qcow2", "-F", "qcow2");
    }

    @Test
    void aMissingBackingFileIsRefused() throws Exception {
        Path top = chain("qcow2", "8M");
        Path dst = dir.resolve("x.qcow2");
        CopyConversionTest.assertRefused(dir, dst, "convert", "-O", "qcow2", "-B", "nosuch.qcow2", "-F", "qcow2",
                top, dst);
        Dm.Result r = Dm.run("convert", "-O", "qcow2", "-B", "base.qcow2", top, dst);
        assertTrue(r.oneLineError().contains("backing format"), r.err());
    }
}
