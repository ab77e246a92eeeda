package io.diskmorph.convert;

import io.diskmorph.image.ExitCodes;
import io.diskmorph.image.Images;
import io.diskmorph.storage.FileStorage;
import io.diskmorph.storage.FileStorageDir;
import io.diskmorph.storage.ForwardingStorage;
import io.diskmorph.storage.LockMode;
import io.diskmorph.storage.Storage;
import io.diskmorph.testing.Dm;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * What stands around the in-place core and can cost a user their disk: a
 * journal is applied only to the file it was written for, and is found
 * through every name of that file; hard links are refused; a no-op is not a
 * rewrite; an earlier rollback record is not dropped silently.
 */
public class InPlaceSafetyTest {
    @TempDir
    Path dir;

    /** A power cut inside the converter: an Error, which no clean-up catches, after {@code writes} image writes. */
    static final class PowerCut extends Error {
        PowerCut() {
            super("power cut", null, false, false);
        }
    }

    /** Converts {@code path} in place and "loses power" after {@code writes} writes to the image. */
    public static void convertAndCut(Path path, String target, int writes) throws IOException {
        Path real = path.toRealPath();
        try (FileStorage image = FileStorage.open(path, false, LockMode.EXCLUSIVE)) {
            Storage cut = new ForwardingStorage(image) {
                int left = writes;

                @Override
                public void write(ByteBuffer src, long position) throws IOException {
                    if (left-- == 0) {
                        throw new PowerCut();
                    }
                    super.write(src, position);
                }

                @Override
                public void close() {
                }
            };
            ConversionFile file = new ConversionFile(cut, FileStorageDir.of(real), real.getFileName().toString(), path,
                    null);
            assertThrows(PowerCut.class, () -> InPlaceConverter.convert(file, new InPlaceConverter.Request(null,
                    target, Map.of(), false), InPlaceConverter.Progress.NONE));
        }
    }

    private Path qcow2WithData(String name) {
        Path img = dir.resolve(name);
        Qemu.create(img, "qcow2", "16M");
        Qemu.io(img, "qcow2", "write -P 0x5a 0 1M", "write -P 0x33 4M 512k", "write -z 8M 64k");
        return img;
    }

    @Test
    void recoverMendsTheFileItsJournalWasWrittenFor() throws Exception {
        Path img = qcow2WithData("a.qcow2");
        byte[] original = Files.readAllBytes(img);
        convertAndCut(img, "qed", 3);
        assertTrue(Files.exists(dir.resolve("a.qcow2.dmjournal")));
        assertFalse(java.util.Arrays.equals(original, Files.readAllBytes(img)), "the cut came after image writes");
        Dm.Result r = Dm.run("recover", img);
        assertEquals(0, r.exitCode(), r.err());
        assertArrayEquals(original, Files.readAllBytes(img));
        assertFalse(Files.exists(dir.resolve("a.qcow2.dmjournal")));
    }

    /**
     * The field trial's case: an interrupted conversion, then the name reused
     * (a new image created over it, a backup copied over it, another file
     * moved there): recover refuses, keeps the journal and says why; the file
     * is left as it is.
     */
    @ParameterizedTest
    @ValueSource(strings = {"qemu-img create", "cp backup", "mv other"})
    void recoverRefusesAFileThatReplacedTheImage(String how) throws Exception {
        Path img = qcow2WithData("i.qcow2");
        Path backup = dir.resolve("backup.qcow2");
        Qemu.create(backup, "qcow2", "16M");
        Qemu.io(backup, "qcow2", "write -P 0x11 0 2M"); // an older state of the disk
        convertAndCut(img, "qed", 4);
        switch (how) {
            case "qemu-img create" -> Qemu.img("create", "-q", "-f", "qcow2", img, "10G").ok();
            case "cp backup" -> Files.write(img, Files.readAllBytes(backup)); // same inode, other content
            case "mv other" -> Files.move(Files.copy(backup, dir.resolve("other.qcow2")), img,
                    java.nio.file.StandardCopyOption.REPLACE_EXISTING);
            default -> throw new IllegalArgumentException(how);
        }
        byte[] replaced = Files.readAllBytes(img);
        Dm.Result r = Dm.run("recover", img);
        assertEquals(ExitCodes.JOURNAL_MISMATCH, r.exitCode(), how + ": " + r.err());
        assertTrue(r.oneLineError().contains("journal") && r.err().contains("kept"), r.err());
        assertArrayEquals(replaced, Files.readAllBytes(img), how + ": recover changed the file");
        assertTrue(Files.exists(dir.resolve("i.qcow2.dmjournal")), "journal kept");
        // --accept-moved skips the inode, not the content: a replaced file is still refused
        assertEquals(ExitCodes.JOURNAL_MISMATCH, Dm.run("recover", "--accept-moved", img).exitCode(), how);
        assertArrayEquals(replaced, Files.readAllBytes(img));
    }

    /** An image copied elsewhere with its journal (another host, a restored backup) recovers with --accept-moved. */
    @Test
    void aMovedImageRecoversByContent() throws Exception {
        Path img = qcow2WithData("m.qcow2");
        byte[] original = Files.readAllBytes(img);
        convertAndCut(img, "qed", 2);
        Path moved = Files.createDirectories(dir.resolve("elsewhere")).resolve("m.qcow2");
        Files.copy(img, moved);
        Files.copy(dir.resolve("m.qcow2.dmjournal"), moved.resolveSibling("m.qcow2.dmjournal"));
        assertEquals(ExitCodes.JOURNAL_MISMATCH, Dm.run("recover", moved).exitCode());
        Dm.run("recover", "--accept-moved", moved).ok();
        assertArrayEquals(original, Files.readAllBytes(moved));
    }

    /**
     * Converting through a symbolic link puts the journal beside the real
     * file, so the interrupted conversion is seen through the link and the
     * real name alike, and recovered through either.
     */
    @Test
    void journalIsFoundThroughEveryNameOfTheFile() throws Exception {
        Path real = qcow2WithData("real.qcow2");
        byte[] original = Files.readAllBytes(real);
        Path links = Files.createDirectories(dir.resolve("links"));
        Path link = Files.createSymbolicLink(links.resolve("l.qcow2"), Path.of("../real.qcow2"));
        convertAndCut(link, "qed", 3);
        assertTrue(Files.exists(dir.resolve("real.qcow2.dmjournal")), "journal beside the real file");
        assertFalse(Files.exists(links.resolve("l.qcow2.dmjournal")));
        for (Path name : List.of(real, link)) {
            Dm.Result r = Dm.run("info", name);
            assertEquals(ExitCodes.INTERRUPTED_CONVERSION, r.exitCode(), name + ": " + r.err());
            Dm.Result c = Dm.run("check", name);
            assertEquals(ExitCodes.INTERRUPTED_CONVERSION, c.exitCode(), "check says recover, " + c.err());
        }
        Dm.run("recover", real).ok();
        assertArrayEquals(original, Files.readAllBytes(real));
        assertEquals(Images.journalPath(link), Images.journalPath(real));

        // and a finished conversion through the link keeps its rollback record beside the real file
        Dm.run("convert", "--in-place", "--keep-rollback", "-O", "qed", link).ok();
        assertTrue(Files.exists(dir.resolve("real.qcow2.dmrollback")));
        Dm.run("rollback", real).ok();
        assertArrayEquals(original, Files.readAllBytes(real));
    }

    /**
     * A file with several hard links is refused: its journal would sit
     * beside one name only, and every other name (a backup tool's link, say)
     * would change format too.
     */
    @Test
    void hardLinkedImagesAreRefused() throws Exception {
        Path img = qcow2WithData("h.qcow2");
        Files.createLink(dir.resolve("h2.qcow2"), img);
        byte[] original = Files.readAllBytes(img);
        for (String dry : new String[]{"--dry-run", "--keep-rollback"}) {
            Dm.Result r = Dm.run("convert", "--in-place", dry, "-O", "qed", img);
            assertEquals(ExitCodes.UNSUPPORTED, r.exitCode(), r.err());
            assertTrue(r.oneLineError().contains("hard links"), r.err());
        }
        assertArrayEquals(original, Files.readAllBytes(img));
        assertFalse(Files.exists(dir.resolve("h.qcow2.dmjournal")));
    }

    /** Same format and no option that changes anything: nothing is written, and the user is told so. */
    @Test
    void aNoOpConversionWritesNothing() throws Exception {
        Path qed = dir.resolve("n.qed");
        Qemu.create(qed, "qed", "16M");
        Qemu.io(qed, "qed", "write -P 1 0 1M");
        Path qcow2 = qcow2WithData("n.qcow2");
        for (String[] c : new String[][]{{"qed", qed.toString()}, {"qcow2", qcow2.toString()},
                {"qcow2", "-o", "cluster_size=64k,compat=1.1", qcow2.toString()}}) {
            Path img = Path.of(c[c.length - 1]);
            byte[] before = Files.readAllBytes(img);
            var mtime = Files.getLastModifiedTime(img);
            List<String> args = new java.util.ArrayList<>(List.of("convert", "--in-place", "-O"));
            args.addAll(List.of(c));
            Dm.Result r = Dm.run(args.toArray());
            assertEquals(0, r.exitCode(), r.err());
            assertTrue(r.out().contains("nothing to change"), r.out());
            assertArrayEquals(before, Files.readAllBytes(img));
            assertEquals(mtime, Files.getLastModifiedTime(img), "not even rewritten with the same bytes");
        }
        // a real change still converts
        Dm.run("convert", "--in-place", "-O", "qcow2", "-o", "cluster_size=32k", qcow2).ok();
        assertEquals(32768, Qemu.img("info", "--output=json", qcow2).ok().json().get("cluster-size").asLong());
    }

    /**
     * recover while another process still holds the image (a killed
     * conversion's process that has not finished exiting, or QEMU): refused
     * with the in-use code, saying to retry, and the file untouched.
     */
    @Test
    void recoverOnALockedImageSaysToRetry() throws Exception {
        Path img = qcow2WithData("l.qcow2");
        convertAndCut(img, "qed", 3);
        byte[] cut = Files.readAllBytes(img);
        Process nbd = new ProcessBuilder("qemu-nbd", "-f", "raw", "--persistent", "--socket",
                dir.resolve("nbd.sock").toString(), img.toString()).redirectErrorStream(true)
                .redirectOutput(dir.resolve("nbd.log").toFile()).start();
        try {
            // wait until qemu-nbd holds the image's locks (its socket may appear before it has opened the image)
            for (int i = 0; ; i++) {
                if (!nbd.isAlive()) {
                    fail("qemu-nbd exited: " + Files.readString(dir.resolve("nbd.log")));
                }
                try (FileStorage probe = FileStorage.open(img, true, LockMode.SHARED)) {
                    assertTrue(i < 1000, "qemu-nbd never locked the image");
                } catch (io.diskmorph.image.ImageInUseException held) {
                    break;
                }
                Thread.sleep(20);
            }
            Dm.Result r = Dm.run("recover", img);
            assertEquals(ExitCodes.IN_USE, r.exitCode(), r.err());
            assertTrue(r.oneLineError().contains("retry"), r.err());
        } finally {
            nbd.destroy();
            nbd.waitFor(10, java.util.concurrent.TimeUnit.SECONDS);
        }
        assertArrayEquals(cut, Files.readAllBytes(img));
        Dm.run("recover", img).ok();
    }

    /** A second conversion makes the first one's rollback record useless: it says so when it removes it. */
    @Test
    void anEarlierRollbackRecordIsNotDroppedSilently() throws Exception {
        Path img = qcow2WithData("r.qcow2");
        Dm.run("convert", "--in-place", "--keep-rollback", "-O", "qed", img).ok();
        assertTrue(Files.exists(dir.resolve("r.qcow2.dmrollback")));
        Dm.Result dry = Dm.run("convert", "--in-place", "--dry-run", "-O", "qcow2", img);
        assertTrue(dry.err().contains("would remove the rollback record"), dry.err());
        assertTrue(Files.exists(dir.resolve("r.qcow2.dmrollback")), "a dry run removes nothing");
        Dm.Result r = Dm.run("convert", "--in-place", "-O", "qcow2", img).ok();
        assertTrue(r.err().contains("removed the rollback record"), r.err());
        assertFalse(Files.exists(dir.resolve("r.qcow2.dmrollback")));
    }
}
