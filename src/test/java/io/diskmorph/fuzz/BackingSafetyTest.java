package io.diskmorph.fuzz;

import io.diskmorph.image.DiskImage;
import io.diskmorph.image.ExitCodes;
import io.diskmorph.image.Images;
import io.diskmorph.image.OpenOptions;
import io.diskmorph.testing.Dm;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.util.List;

import static io.diskmorph.fuzz.HostileImageTest.digest;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * References inside an image are hostile input too: a backing file name can
 * point anywhere. Safe defaults: backing files are opened read-only, only
 * when a read needs them, relative to the image's directory, never through a
 * pseudo-protocol; --no-backing refuses them entirely; info never follows a
 * chain unless asked; loops and absurd depths end with one line.
 */
class BackingSafetyTest {
    @TempDir
    Path dir;

    /** The standard QED image (guest clusters 0-2 allocated) with a backing file name: cluster 3 on reads from it. */
    private Path top(String name, String backingName) throws IOException {
        Path f = dir.resolve(name);
        Files.createDirectories(f.getParent());
        Files.write(f, QedBuilder.standard().backing(backingName, 64).bytes());
        return f;
    }

    private static final int GUEST_CLUSTER_3 = 3 * 4096;

    /** A qcow2 image naming {@code backingName} (raw), made by qemu-img without opening it (-u). */
    private Path qcow2Top(String name, String backingName) {
        Path f = dir.resolve(name);
        Qemu.img("create", "-q", "-f", "qcow2", "-u", "-b", backingName, "-F", "raw", f, "1M").ok();
        return f;
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {
            "json:{\"file\":{\"driver\":\"file\",\"filename\":\"/etc/passwd\"}}",
            "nbd://127.0.0.1:10809/export",
            "http://127.0.0.1/disk.img",
            "ssh://127.0.0.1/disk.img",
            "nbd:127.0.0.1:10809",
    })
    void pseudoProtocolsAreRefused(String backing) throws IOException {
        for (Path f : List.of(top("p.qed", backing), qcow2Top("p.qcow2", backing))) {
            pseudoProtocolIsRefused(f, backing);
        }
    }

    private void pseudoProtocolIsRefused(Path f, String backing) throws IOException {
        String before = digest(f);
        long n = Files.size(f);
        Dm.Result info = Bounded.cli(n, "info", "--output=json", f);
        assertEquals(0, info.exitCode(), "info does not follow the chain: " + info.err());
        assertEquals(backing, info.json().get("backing-filename").asText());
        for (Object[] cmd : new Object[][]{{"map", f}, {"info", "--backing-chain", f}}) {
            Dm.Result r = Bounded.cli(n, cmd);
            assertEquals(ExitCodes.UNSUPPORTED, r.exitCode(), r.err());
            assertTrue(r.oneLineError().contains("protocol"), r.err());
        }
        assertEquals(0, Bounded.cli(n, "map", "--no-backing", f).exitCode(), "--no-backing never opens it");
        assertEquals(before, digest(f));
    }

    @Test
    void relativeNamesResolveAgainstTheImageDirectoryLikeQemu() throws IOException {
        Path base = dir.resolve("images/base/b.raw");
        Files.createDirectories(base.getParent());
        Qemu.create(base, "raw", "1M");
        Qemu.io(base, "raw", "write -P 0x77 0 1M");
        Path f = top("images/top/t.qed", "../base/b.raw");
        var info = Dm.run("info", "--output=json", f).ok().json();
        assertEquals(base.getParent().getParent().resolve("top/../base/b.raw").toString(),
                info.get("full-backing-filename").asText());
        assertEquals(Qemu.map(f, "qed"), Dm.map(f, "qed"), "same chain as qemu-img map");
        try (DiskImage img = Images.open(f, OpenOptions.forReading())) {
            ByteBuffer b = ByteBuffer.allocate(4096);
            img.read(b, GUEST_CLUSTER_3);
            assertEquals(0x77, b.get(0), "cluster 3 comes from the backing file");
        }
        // "file:" is a plain file name, still relative to the image
        Path g = top("images/top/u.qed", "file:../base/b.raw");
        assertEquals(Qemu.map(f, "qed").get(1), Dm.map(g, "qed").get(1));
    }

    @Test
    void backingFilesAreOpenedReadOnlyAndOnlyWhenNeeded() throws IOException {
        Path base = dir.resolve("b.raw");
        Qemu.create(base, "raw", "1M");
        Qemu.io(base, "raw", "write -P 0x77 0 1M");
        String baseBefore = digest(base);
        FileTime baseTime = Files.getLastModifiedTime(base);
        Path f = top("t.qed", "b.raw");
        try (DiskImage img = Images.open(f, OpenOptions.forWriting())) {
            // a partial write to an unallocated cluster copies the rest up from the backing file
            img.write(ByteBuffer.wrap(new byte[]{1, 2, 3}), GUEST_CLUSTER_3 + 100);
            DiskImage b = img.backing();
            assertTrue(b.isReadOnly() && b.storage().isReadOnly(), "backing opened read-only");
            ByteBuffer r = ByteBuffer.allocate(4096);
            img.read(r, GUEST_CLUSTER_3);
            assertEquals(0x77, r.get(0));
            assertEquals(2, r.get(101));
        }
        assertEquals(baseBefore, digest(base), "the backing file is never written");
        assertEquals(baseTime, Files.getLastModifiedTime(base));
        assertEquals(0, Qemu.check(f, "qed").exitCode());

        // a missing backing file: opening and reading allocated clusters work, only reads that need it fail
        Path m = top("m.qed", "missing.raw");
        try (DiskImage img = Images.open(m, OpenOptions.forReading())) {
            ByteBuffer r = ByteBuffer.allocate(4096);
            img.read(r, 0);
            assertEquals(0x11, r.get(0));
            assertThrows(NoSuchFileException.class, () -> img.read(ByteBuffer.allocate(10), GUEST_CLUSTER_3));
        }
        long n = Files.size(m);
        assertEquals(0, Bounded.cli(n, "info", m).exitCode());
        assertEquals(0, Bounded.cli(n, "map", "--no-backing", m).exitCode());
        Dm.Result map = Bounded.cli(n, "map", m);
        assertEquals(ExitCodes.ERROR, map.exitCode());
        assertTrue(map.oneLineError().contains("backing file not found"), map.err());
    }

    /**
     * A backing name that points at a FIFO, a directory or a character device
     * must not hang (opening a FIFO blocks until someone writes to it) or read it.
     */
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"fifo", "directory", "/dev/zero"})
    void backingFilesThatAreNotFilesAreRefused(String kind) throws IOException, InterruptedException {
        String name = kind;
        if (kind.equals("fifo")) {
            assertEquals(0, new ProcessBuilder("mkfifo", dir.resolve("fifo").toString()).start().waitFor());
        } else if (kind.equals("directory")) {
            Files.createDirectory(dir.resolve("directory"));
        }
        Path f = top("t.qed", name);
        long n = Files.size(f);
        assertEquals(0, Bounded.cli(n, "info", f).exitCode(), "info does not open it");
        // planning opens the backing chain (a source whose chain cannot be opened is refused) and does not
        // hang on it; told not to open it, it plans without it
        Dm.Result plan = Bounded.cli(n, "convert", "--in-place", "--dry-run", "-O", "qed", "-o", "cluster_size=64k", f);
        assertEquals(ExitCodes.CORRUPT, plan.exitCode(), plan.err());
        assertTrue(plan.oneLineError().contains("backing file cannot be opened") && plan.err().contains("--no-backing"),
                plan.err());
        assertEquals(0, Bounded.cli(n, "convert", "--in-place", "--dry-run", "--no-backing", "-O", "qcow2", f)
                .exitCode(), "with --no-backing the backing file is never read");
        // a larger target cluster would need the backing file's data beside the top's: never made up as zeros
        Dm.Result needs = Bounded.cli(n, "convert", "--in-place", "--dry-run", "--no-backing", "-O", "qed", "-o",
                "cluster_size=64k", f);
        assertEquals(ExitCodes.UNSUPPORTED, needs.exitCode(), needs.err());
        assertTrue(needs.oneLineError().contains("--no-backing keeps unread"), needs.err());
        for (Object[] cmd : new Object[][]{{"map", f}, {"info", "--backing-chain", f}}) {
            Dm.Result r = Bounded.cli(n, cmd);
            assertEquals(ExitCodes.ERROR, r.exitCode(), r.err() + r.out());
            assertTrue(r.oneLineError().contains(kind.equals("directory") ? "is a directory" : "not a regular file"), r.err());
        }
    }

    /**
     * qcow2's external data file is a reference too: a FIFO or a device is
     * refused without hanging, a protocol is refused, and an image opened
     * from memory never looks for it on the host (see the qcow2 fuzz
     * regression input external-data-file-followed-from-memory).
     */
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"fifo", "/dev/zero", "nbd://127.0.0.1:10809/x"})
    void externalDataFilesThatAreNotFilesAreRefused(String kind) throws IOException, InterruptedException {
        Path data = dir.resolve("data.raw");
        Path f = dir.resolve("d.qcow2");
        Qemu.create(f, "qcow2", "1M", "data_file=" + data);
        Files.delete(data);
        String name = kind.equals("fifo") ? data.toString() : kind;
        if (kind.equals("fifo")) {
            assertEquals(0, new ProcessBuilder("mkfifo", data.toString()).start().waitFor());
        } else {
            // same header, another name: qemu-img amend cannot do this, so rewrite the extension
            f = dir.resolve("d2.qcow2");
            Qemu.img("create", "-q", "-f", "qcow2", "-o", "data_file=" + dir.resolve("x.raw"), f, "1M").ok();
            Files.delete(dir.resolve("x.raw"));
            byte[] img = Files.readAllBytes(f);
            String old = dir.resolve("x.raw").toString();
            int at = new String(img, java.nio.charset.StandardCharsets.ISO_8859_1).indexOf(old);
            assertTrue(at > 0 && name.length() <= old.length() + 64);
            // the extension's length field is the 4 bytes before the name
            java.nio.ByteBuffer.wrap(img).putInt(at - 4, name.length());
            byte[] padded = new byte[(name.length() + 7) & ~7];
            System.arraycopy(name.getBytes(java.nio.charset.StandardCharsets.US_ASCII), 0, padded, 0, name.length());
            System.arraycopy(new byte[(old.length() + 7) & ~7], 0, img, at, (old.length() + 7) & ~7);
            System.arraycopy(padded, 0, img, at, padded.length);
            Files.write(f, img);
        }
        long n = Files.size(f);
        String before = digest(f);
        for (Object[] cmd : new Object[][]{{"info", f}, {"map", f}}) {
            Dm.Result r = Bounded.cli(n, cmd);
            assertTrue(r.exitCode() == ExitCodes.ERROR || r.exitCode() == ExitCodes.UNSUPPORTED, r.err() + r.out());
            assertTrue(r.oneLineError().contains(kind.contains(":") ? "protocol" : "not a regular file"), r.err());
        }
        assertEquals(before, digest(f));
    }

    @Test
    void loopsEndWithOneLine() throws IOException {
        Path self = top("self.qed", "self.qed");
        Path a = top("a.qed", "b.qed");
        top("b.qed", "a.qed");
        Path viaLink = top("c.qed", "link.qed");
        Files.createSymbolicLink(dir.resolve("link.qed"), viaLink);
        Path qself = qcow2Top("qself.qcow2", "qself.qcow2");
        Path qa = dir.resolve("qa.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", "-u", "-b", "qb.qcow2", "-F", "qcow2", qa, "1M").ok();
        Qemu.img("create", "-q", "-f", "qcow2", "-u", "-b", "qa.qcow2", "-F", "qcow2", dir.resolve("qb.qcow2"), "1M").ok();
        for (Path f : List.of(self, a, viaLink, qself, qa)) {
            String before = digest(f);
            long n = Files.size(f);
            assertEquals(0, Bounded.cli(n, "info", f).exitCode());
            assertEquals(0, Bounded.cli(n, "map", "--no-backing", f).exitCode());
            for (Object[] cmd : new Object[][]{{"map", f}, {"info", "--backing-chain", f}}) {
                Dm.Result r = Bounded.cli(n, cmd);
                assertEquals(ExitCodes.CORRUPT, r.exitCode(), r.err());
                assertTrue(r.oneLineError().contains("backing chain") && r.err().contains("loop"), r.err());
            }
            assertEquals(before, digest(f));
        }
    }

    @Test
    void chainsDeeperThanTheLimitAreRefused() throws IOException {
        int depth = Images.MAX_CHAIN_DEPTH + 10;
        Qemu.create(dir.resolve("l" + depth + ".raw"), "raw", "1M");
        for (int i = depth - 1; i >= 0; i--) {
            String next = i == depth - 1 ? "l" + depth + ".raw" : "l" + (i + 1) + ".qed";
            QedBuilder b = new QedBuilder().backing(next, 64);
            Files.write(dir.resolve("l" + i + ".qed"), b.bytes());
        }
        Path top = dir.resolve("l0.qed");
        long n = Files.size(top);
        Dm.Result r = Bounded.cli(n, "map", top);
        assertEquals(ExitCodes.UNSUPPORTED, r.exitCode(), r.err());
        assertTrue(r.oneLineError().contains("deeper than " + Images.MAX_CHAIN_DEPTH), r.err());
        // a chain within the limit is followed to its end
        Path mid = dir.resolve("l20.qed");
        assertEquals(0, Bounded.cli(n, "map", mid).exitCode());
    }

    /**
     * The probing guard (QEMU's rule): a guest write to a raw image that was
     * probed is refused when it would make the file probe as another format;
     * with -f raw the same write is the user's choice and goes through.
     */
    @Test
    void aGuestCannotTurnAProbedRawImageIntoAnotherFormat() throws IOException {
        byte[] qedHeader = new QedBuilder().backing("/etc/passwd", 64).bytes();
        Path disk = dir.resolve("guest.raw");
        Qemu.create(disk, "raw", "1M");
        String before = digest(disk);
        try (DiskImage img = Images.open(disk, OpenOptions.forWriting())) {
            assertEquals("raw", img.format().name());
            var e = assertThrows(io.diskmorph.image.ImageException.class,
                    () -> img.write(ByteBuffer.wrap(qedHeader, 0, 512), 0));
            assertTrue(e.getMessage().contains("-f raw") && !e.getMessage().contains("\n"), e.getMessage());
        }
        assertEquals(before, digest(disk), "refused write left the disk alone");

        // "QEDx": zeroing the fourth byte would complete the magic
        try (DiskImage img = Images.open(disk, OpenOptions.forWriting().withFormat("raw"))) {
            img.write(ByteBuffer.wrap(new byte[]{'Q', 'E', 'D', 'x'}), 0);
        }
        String almost = digest(disk);
        try (DiskImage img = Images.open(disk, OpenOptions.forWriting())) {
            assertThrows(io.diskmorph.image.ImageException.class, () -> img.writeZeroes(3, 1, false));
        }
        assertEquals(almost, digest(disk));

        // with -f raw the guest may write what it likes; the file then probes as QED, and info
        // shows its backing name without opening it, while -f raw keeps treating it as a disk
        try (DiskImage img = Images.open(disk, OpenOptions.forWriting().withFormat("raw"))) {
            img.write(ByteBuffer.wrap(qedHeader), 0);
        }
        assertEquals("/etc/passwd", Dm.run("info", "--output=json", disk).ok().json().get("backing-filename").asText());
        var raw = Dm.run("info", "-f", "raw", "--output=json", disk).ok().json();
        assertEquals("raw", raw.get("format").asText());
        assertEquals(1 << 20, raw.get("virtual-size").asLong());
        byte[] guest = new byte[qedHeader.length];
        try (DiskImage img = Images.open(disk, OpenOptions.forReading().withFormat("raw"))) {
            img.read(ByteBuffer.wrap(guest), 0);
        }
        assertArrayEquals(qedHeader, guest);
    }
}
