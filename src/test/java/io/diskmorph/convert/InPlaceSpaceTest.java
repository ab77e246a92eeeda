package io.diskmorph.convert;

import io.diskmorph.image.ExitCodes;
import io.diskmorph.storage.FileStorage;
import io.diskmorph.storage.LockMode;
import io.diskmorph.testing.Dm;
import io.diskmorph.testing.Qemu;
import io.diskmorph.testing.SmallFileSystem;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The extra space a plan announces is a bound in allocated blocks that the
 * run keeps, also when the new metadata lands in holes of a sparse file; a
 * file system without that much room is refused by the dry run and the run
 * alike (exit 68), before anything is written.
 */
class InPlaceSpaceTest {
    @TempDir
    Path dir;
    @RegisterExtension
    final SmallFileSystem fs = new SmallFileSystem();

    /**
     * Sparse sources, where tables go into holes: the blocks the image and
     * the journal (kept as the rollback record, with its blocks) allocate
     * beyond the original file stay within the announced bound.
     */
    @ParameterizedTest
    @CsvSource({"raw, qcow2", "raw, qed", "qcow2, qed", "qed, qcow2"})
    void announcedExtraSpaceBoundsTheBlocksAllocated(String from, String to) throws Exception {
        Path img = dir.resolve("s." + from);
        Path raw = dir.resolve("src.raw");
        Qemu.img("create", "-q", "-f", "raw", raw, "1G").ok();
        Qemu.io(raw, "raw", "write -P 1 0 1M", "write -P 2 300M 64k", "write -P 3 700M 2M", "write -P 4 1023M 1M");
        if (from.equals("raw")) {
            Files.move(raw, img);
        } else {
            Dm.run("convert", "--in-place", "-O", from, raw).ok(); // made in place: data keeps the raw holes
            Files.move(raw, img);
        }
        long extra = Dm.run("convert", "--in-place", "--dry-run", "--keep-rollback", "--output=json", "-O", to, img)
                .ok().json().get("extra-space").asLong();
        long before = allocated(img);
        Dm.run("convert", "--in-place", "--keep-rollback", "-O", to, img).ok();
        long grown = Math.max(0, allocated(img) - before) + allocated(dir.resolve(img.getFileName() + ".dmrollback"));
        assertTrue(grown <= extra, from + " -> " + to + ": allocated " + grown + " bytes, announced at most " + extra);
        assertEquals(0, Qemu.check(img, to).exitCode());
    }

    /**
     * The field trial's case: a small file system with a few hundred KiB
     * free. A raw disk's new tables go into its holes, which the old plan did
     * not count ("extra space 2 KiB, enough", then ENOSPC). Now the dry run
     * and the run both say there is not enough, exit 68, and nothing changes.
     */
    @Test
    void tooLittleSpaceIsFoundByThePlan() throws Exception {
        Path mount = fs.mount(dir, "24M");
        Path img = mount.resolve("d.raw");
        Qemu.img("create", "-q", "-f", "raw", img, "2G").ok();
        Qemu.io(img, "raw", "write -P 1 0 1M", "write -P 2 1G 1M", "write -P 3 2047M 1M");
        long free = Files.getFileStore(mount).getUsableSpace();
        Qemu.run("fallocate", "-l", String.valueOf(free - (192 << 10)), mount.resolve("filler").toString()).ok();
        String original = sha256(img);

        Dm.Result dry = Dm.run("convert", "--in-place", "--dry-run", "-O", "qcow2", img);
        assertEquals(ExitCodes.NO_SPACE, dry.exitCode(), dry.out() + dry.err());
        assertTrue(dry.out().contains("NOT ENOUGH"), dry.out());
        Dm.Result run = Dm.run("convert", "--in-place", "-O", "qcow2", img);
        assertEquals(ExitCodes.NO_SPACE, run.exitCode(), run.err());
        assertTrue(run.oneLineError().contains("not enough free space"), run.err());
        assertEquals(original, sha256(img));
        assertFalse(Files.exists(mount.resolve("d.raw.dmjournal")));

        // with the room the plan asked for, the same conversion succeeds
        Files.delete(mount.resolve("filler"));
        Dm.run("convert", "--in-place", "-O", "qcow2", img).ok();
        assertEquals(0, Qemu.check(img, "qcow2").exitCode());
    }

    /** ENOSPC met by any command is reported as such (exit 68), never as an internal error. */
    @Test
    void aFullDiskDuringACopyExits68() throws Exception {
        Path mount = fs.mount(dir, "8M");
        Path src = dir.resolve("big.raw");
        Qemu.img("create", "-q", "-f", "raw", src, "64M").ok();
        Qemu.io(src, "raw", "write -P 7 0 48M");
        for (int i = 0; i < 3; i++) { // the failure used to surface at random as an InterruptedException
            Dm.Result r = Dm.run("convert", "-O", "qcow2", src, mount.resolve("o.qcow2"));
            assertEquals(ExitCodes.NO_SPACE, r.exitCode(), r.err());
            assertTrue(r.oneLineError().contains("no space left on device"), r.err());
            try (var files = Files.list(mount)) {
                assertEquals(0, files.count(), "the unfinished copy is removed");
            }
        }
    }

    static String sha256(Path p) throws Exception {
        java.security.MessageDigest md = java.security.MessageDigest.getInstance("SHA-256");
        try (var in = Files.newInputStream(p)) {
            byte[] b = new byte[1 << 20];
            for (int n; (n = in.read(b)) > 0; ) {
                md.update(b, 0, n);
            }
        }
        return java.util.HexFormat.of().formatHex(md.digest());
    }

    private static long allocated(Path p) throws IOException {
        try (FileStorage s = FileStorage.open(p, true, LockMode.NONE)) {
            return s.allocatedBytes();
        }
    }
}
