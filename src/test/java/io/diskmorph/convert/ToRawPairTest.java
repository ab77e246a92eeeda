package io.diskmorph.convert;

import io.diskmorph.image.ExitCodes;
import io.diskmorph.testing.Dm;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

/**
 * {@code convert --in-place -O raw} on files qemu-img made: the result is
 * what {@code qemu-img convert -O raw} makes, in content (qemu-img compare,
 * byte for byte), length and holes (allocated bytes, qemu-img map); dry runs
 * and refusals leave the file byte-identical.
 */
class ToRawPairTest {
    @TempDir
    Path dir;

    @ParameterizedTest(name = "{0} {1}")
    @CsvSource({
            "qcow2, cluster_size=4k, 5000k",
            "qcow2, cluster_size=64k, 6M",
            "qcow2, cluster_size=64k;compat=0.10, 6M",
            "qcow2, cluster_size=512, 1M",
            "qcow2, cluster_size=2M, 7M",
            "qed, cluster_size=64k;table_size=2, 6M",
            "qed, cluster_size=4k, 5000k",
            "vmdk, subformat=monolithicSparse, 5000k",
            "vmdk, zeroed_grain=on, 6M",
            "vmdk, hwversion=4;zeroed_grain=on, 3M",
            "parallels, cluster_size=64k, 6M",
            "parallels, cluster_size=4k, 2000k",
            "qcow, encryption=off, 5000k",
            // through qcow2 (ToRawVia): drivers that cannot move their own units
            "vdi, static=off, 6M",
            "vdi, static=on, 3M",
            "vhdx, subformat=dynamic, 7M",
            "vhdx, block_size=1M;log_size=1M, 6M",
            "vpc, subformat=dynamic, 6M"})
    void becomesWhatACopyToRawMakes(String format, String opts, String size) throws Exception {
        Path image = scrambled(format, opts.replace(';', ','), size);
        Path copy = dir.resolve("copy.raw");
        Qemu.img("convert", "-f", format, "-O", "raw", image, copy).ok();
        byte[] original = Files.readAllBytes(image);

        Dm.Result dry = Dm.run("convert", "--in-place", "--dry-run", "--output=json", "-O", "raw", image).ok();
        assertArrayEquals(original, Files.readAllBytes(image), "a dry run writes nothing");
        assertEquals("raw", dry.json().get("target-format").asText());
        assertEquals(Files.size(copy), dry.json().get("final-length").asLong());

        Dm.run("convert", "--in-place", "-O", "raw", image).ok();
        assertFalse(Files.exists(dir.resolve(image.getFileName() + ".dmjournal")), "journal removed");
        assertEquals(Files.size(copy), Files.size(image), "file length is the virtual size");
        assertArrayEquals(Files.readAllBytes(copy), Files.readAllBytes(image), "every guest byte at its offset");
        assertEquals(0, Qemu.img("compare", "-f", "raw", "-F", "raw", image, copy).exitCode());
        assertTrue(Qemu.img("info", "--output=json", image).ok().json().get("format").asText().equals("raw"));
        long ours = allocated(image);
        long theirs = allocated(copy);
        // zeros are holes like the copy's; a unit that sat at its home already keeps its zero blocks
        assertTrue(ours <= theirs + (256 << 10) && ours + (64 << 10) >= theirs,
                "allocated " + ours + " bytes, the copy " + theirs);
        assertEquals(dataBytes(Qemu.map(copy, "raw")), dataBytes(Qemu.map(image, "raw")), 256 << 10,
                "qemu-img map: data where the copy has data");
    }

    /** Disks of no size, and smaller than one cluster (guest unit 0 is the whole disk). */
    @ParameterizedTest(name = "{0} {1} of {2}")
    @CsvSource({"qcow2, cluster_size=64k, 0", "qed, cluster_size=4k, 0", "qcow2, cluster_size=2M, 1M",
            "qcow2, cluster_size=64k, 1536", "qed, cluster_size=64k, 64k"})
    void tinyDisks(String format, String opts, String size) throws Exception {
        Path image = dir.resolve("tiny." + format);
        Qemu.create(image, format, size, opts);
        if (!size.equals("0")) {
            Qemu.io(image, format, "write -P 9 0 512", "write -P 8 1024 512");
        }
        Path copy = dir.resolve("tiny.raw");
        Qemu.img("convert", "-f", format, "-O", "raw", image, copy).ok();
        Dm.run("convert", "--in-place", "-O", "raw", image).ok();
        assertArrayEquals(Files.readAllBytes(copy), Files.readAllBytes(image));
        assertEquals("raw", Qemu.img("info", "--output=json", image).ok().json().get("format").asText());
    }

    @Test
    void refusalsLeaveTheFileAlone() throws Exception {
        Path stream = dir.resolve("stream.vmdk");
        Qemu.create(stream, "vmdk", "4M", "subformat=streamOptimized");
        Qemu.io(stream, "vmdk", "write -P 7 1M 64k");
        // every grain compressed: through qcow2 (ToRawVia), in one command
        Path streamRaw = dir.resolve("stream.raw");
        Qemu.img("convert", "-O", "raw", stream, streamRaw).ok();
        Dm.Result dry = Dm.run("convert", "--in-place", "--dry-run", "-O", "raw", stream).ok();
        assertTrue(dry.out().contains("through qcow2"), dry.out());
        Dm.run("convert", "--in-place", "-O", "raw", stream).ok();
        assertArrayEquals(Files.readAllBytes(streamRaw), Files.readAllBytes(stream), "streamOptimized via qcow2");

        Path parent = dir.resolve("parent.vmdk");
        Qemu.create(parent, "vmdk", "4M");
        Path child = dir.resolve("child.vmdk");
        Qemu.img("create", "-f", "vmdk", "-b", parent.getFileName(), "-F", "vmdk", child).ok();
        Qemu.io(child, "vmdk", "write -P 7 1M 64k");
        refused(child, ExitCodes.UNSUPPORTED, "parent");

        Path flat = dir.resolve("two.vmdk");
        Qemu.create(flat, "vmdk", "4M", "subformat=twoGbMaxExtentSparse");
        Qemu.io(flat, "vmdk", "write -P 7 1M 64k");
        refused(flat, ExitCodes.UNSUPPORTED, "extent file");

        Path base = dir.resolve("base.qcow2");
        Qemu.create(base, "qcow2", "4M");
        Path top = dir.resolve("top.qcow2");
        Qemu.img("create", "-f", "qcow2", "-b", base.getFileName(), "-F", "qcow2", top).ok();
        Qemu.io(top, "qcow2", "write -P 7 1M 64k");
        refused(top, ExitCodes.UNSUPPORTED, "backing file");

        Path packed = dir.resolve("packed.qcow2");
        Path raw = dir.resolve("content.raw");
        Qemu.create(raw, "raw", "4M");
        Qemu.io(raw, "raw", "write -P 7 1M 64k");
        Qemu.img("convert", "-c", "-f", "raw", "-O", "qcow2", raw, packed).ok();
        // compressed clusters: through QED (ToRawVia), in one command
        Path packedRaw = dir.resolve("packed.raw");
        Qemu.img("convert", "-O", "raw", packed, packedRaw).ok();
        Dm.Result viaQed = Dm.run("convert", "--in-place", "--output=json", "-O", "raw", packed).ok();
        assertEquals("through qed, then roll-forward", viaQed.json().get("policy").asText());
        assertArrayEquals(Files.readAllBytes(packedRaw), Files.readAllBytes(packed), "compressed qcow2 via QED");

        Path subclusters = dir.resolve("ext.qcow2");
        Qemu.create(subclusters, "qcow2", "4M", "extended_l2=on,cluster_size=128k");
        Qemu.io(subclusters, "qcow2", "write -P 7 1M 4k", "write -P 8 3M 64k", "write -P 9 0 512");
        Path extRaw = dir.resolve("ext.raw");
        Qemu.img("convert", "-O", "raw", subclusters, extRaw).ok();
        Dm.run("convert", "--in-place", "-O", "raw", subclusters).ok();
        assertArrayEquals(Files.readAllBytes(extRaw), Files.readAllBytes(subclusters), "extended L2 via QED");

        Path snap = dir.resolve("snap.qcow2");
        Qemu.create(snap, "qcow2", "4M");
        Qemu.io(snap, "qcow2", "write -P 7 1M 64k");
        Qemu.img("snapshot", "-c", "s1", snap).ok();
        refused(snap, ExitCodes.UNSUPPORTED, "snapshot");

        Path plain = dir.resolve("plain.qcow2");
        Qemu.create(plain, "qcow2", "4M");
        Qemu.io(plain, "qcow2", "write -P 7 1M 64k");
        byte[] before = Files.readAllBytes(plain);
        Dm.Result r = Dm.run("convert", "--in-place", "--keep-rollback", "-O", "raw", plain);
        assertEquals(ExitCodes.USAGE, r.exitCode(), r.err());
        assertTrue(r.oneLineError().contains("no rollback"), r.err());
        assertArrayEquals(before, Files.readAllBytes(plain));
    }

    @Test
    void aRawSourceHasNothingToChange() throws Exception {
        Path raw = dir.resolve("a.raw");
        Qemu.create(raw, "raw", "4M");
        Qemu.io(raw, "raw", "write -P 7 1M 64k");
        byte[] before = Files.readAllBytes(raw);
        Dm.Result r = Dm.run("convert", "--in-place", "-O", "raw", raw).ok();
        assertTrue(r.out().contains("nothing to change"), r.out());
        assertArrayEquals(before, Files.readAllBytes(raw));
    }

    private void refused(Path image, int code, String why) throws IOException {
        byte[] before = Files.readAllBytes(image);
        Dm.Result r = Dm.run("convert", "--in-place", "-O", "raw", image);
        assertEquals(code, r.exitCode(), r.err() + r.out());
        assertTrue(r.oneLineError().contains(why), r.err());
        assertArrayEquals(before, Files.readAllBytes(image), image + " unchanged");
        assertFalse(Files.exists(dir.resolve(image.getFileName() + ".dmjournal")));
    }

    /**
     * An image written in random 4 KiB pieces (its clusters in random host
     * order: the homes form chains and cycles), with holes, zero clusters,
     * a partial last cluster and data at the guest offsets of its tables.
     */
    private Path scrambled(String format, String opts, String size) throws IOException {
        Path p = dir.resolve("img." + format);
        Files.deleteIfExists(p);
        Qemu.create(p, format, size, opts);
        long bytes = io.diskmorph.image.Sizes.parse(size);
        List<Long> offsets = new ArrayList<>();
        for (long o = 0; o + 4096 <= bytes; o += 4096) {
            if ((o / 4096) % 7 != 5 && (o / (256 << 10)) % 4 != 2) { // small holes, and whole empty stretches
                offsets.add(o);
            }
        }
        Collections.shuffle(offsets, new Random(bytes));
        List<String> cmds = new ArrayList<>();
        for (long o : offsets) {
            cmds.add("write -P " + (1 + (o / 4096) % 250) + " " + o + " 4k");
        }
        cmds.add("write -z " + (bytes / 3 / 65536 * 65536) + " 64k");
        cmds.add("write -P 0x5a " + (bytes - 512) + " 512");
        Qemu.io(p, format, cmds.toArray(String[]::new));
        return p;
    }

    private static long allocated(Path p) throws IOException, InterruptedException {
        Process pr = new ProcessBuilder("stat", "-c", "%b %B", p.toString()).start();
        String[] f = new String(pr.getInputStream().readAllBytes()).trim().split(" ");
        pr.waitFor();
        return Long.parseLong(f[0]) * Long.parseLong(f[1]);
    }

    private static long dataBytes(List<Qemu.MapLine> map) {
        long n = 0;
        for (Qemu.MapLine l : map) {
            n += l.data() ? l.length() : 0;
        }
        return n;
    }
}
