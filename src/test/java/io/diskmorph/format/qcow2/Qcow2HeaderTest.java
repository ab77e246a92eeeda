package io.diskmorph.format.qcow2;

import io.diskmorph.image.DiskImage;
import io.diskmorph.image.Images;
import io.diskmorph.image.OpenOptions;
import io.diskmorph.storage.FileStorage;
import io.diskmorph.storage.LockMode;
import io.diskmorph.testing.Dm;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The header codec against qemu's headers, and header rewrites that keep what they do not understand. */
class Qcow2HeaderTest {
    @TempDir
    Path dir;

    private static Qcow2Header read(Path img) throws Exception {
        try (var s = FileStorage.open(img, true, LockMode.NONE)) {
            return Qcow2Header.read(s);
        }
    }

    @ParameterizedTest(name = "compat={0}")
    @ValueSource(strings = {"0.10", "1.1"})
    void qemuHeadersRoundTripByteForByte(String compat) throws Exception {
        Path base = dir.resolve("base.qcow2");
        Qemu.create(base, "qcow2", "1M");
        Path img = dir.resolve("img.qcow2");
        Qemu.create(img, "qcow2", "3M", "compat=" + compat, "backing_file=base.qcow2", "backing_fmt=qcow2");
        Qcow2Header h = read(img);
        assertEquals("base.qcow2", h.backingFile);
        assertEquals("qcow2", h.backingFormat());
        byte[] zone = h.encodeZone();
        byte[] file = Arrays.copyOf(Files.readAllBytes(img), zone.length);
        assertArrayEquals(file, zone);
    }

    @Test
    void createdHeaderExtensionsMatchQemus() throws Exception {
        Path base = dir.resolve("base.qcow2");
        Qemu.create(base, "qcow2", "1M");
        Path q = dir.resolve("q.qcow2");
        Qemu.create(q, "qcow2", "3M", "backing_file=base.qcow2", "backing_fmt=qcow2");
        Path d = dir.resolve("d.qcow2");
        Dm.run("create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", d, "3M").ok();
        Qcow2Header hq = read(q);
        Qcow2Header hd = read(d);
        assertEquals(hq.extensions(), hd.extensions(), "same extensions, same feature name table");
        byte[] zq = hq.encodeZone();
        byte[] zd = hd.encodeZone();
        // identical apart from where the tables are
        assertArrayEquals(Arrays.copyOfRange(zq, Qcow2Header.V3_LENGTH, zq.length),
                Arrays.copyOfRange(zd, Qcow2Header.V3_LENGTH, zd.length));
    }

    /**
     * An image with header fields past byte 112 and an extension qemu does
     * not know; writing through diskmorph rewrites the header (an unknown
     * autoclear bit is cleared first, the refcount table moves) and keeps both.
     */
    @Test
    void headerRewritesKeepUnknownFieldsAndExtensions() throws Exception {
        Path img = dir.resolve("u.qcow2");
        Qemu.create(img, "qcow2", "4M", "cluster_size=512", "refcount_bits=64");
        byte[] orig = Files.readAllBytes(img);
        Qcow2Header h = read(img);
        byte[] unknownExt = "hello".getBytes(StandardCharsets.US_ASCII);
        ByteBuffer zone = ByteBuffer.allocate(512);
        zone.put(orig, 0, Qcow2Header.V3_LENGTH);
        zone.putInt(100, 120); // header_length: 8 bytes of fields from a future version
        zone.putLong(88, 1L << 40); // an autoclear bit nobody knows
        zone.put(new byte[]{1, 2, 3, 4, 5, 6, 7, 8});
        zone.putInt(0x1234abcd).putInt(unknownExt.length).put(unknownExt).put(new byte[3]);
        zone.putInt(HeaderExtension.END).putInt(0);
        assertTrue(h.extensions().isEmpty(), "qemu's 512-byte cluster header has no room for the feature table");
        System.arraycopy(zone.array(), 0, orig, 0, 512);
        Files.write(img, orig);

        Qcow2Header before = read(img);
        assertEquals(List.of(new HeaderExtension(0x1234abcd, unknownExt)), before.extensions());
        Oracle.assertCheckClean(img);

        byte[] data = new byte[3 << 20]; // outgrows the one-cluster refcount table (2 MiB of file)
        Arrays.fill(data, (byte) 0x5c);
        try (DiskImage d = Images.open(img, OpenOptions.forWriting())) {
            d.write(ByteBuffer.wrap(data), 512 * 1024);
        }
        Qcow2Header after = read(img);
        assertEquals(0, after.autoclear, "unknown autoclear bits are cleared");
        assertTrue(after.refcountTableOffset != before.refcountTableOffset, "the header was rewritten");
        assertEquals(before.extensions(), after.extensions());
        byte[] now = Files.readAllBytes(img);
        assertArrayEquals(Arrays.copyOfRange(orig, 112, 150), Arrays.copyOfRange(now, 112, 150),
                "unknown header fields and extension bytes untouched");
        Oracle.assertCheckClean(img);
        Path raw = dir.resolve("ref.raw");
        byte[] ref = new byte[4 << 20];
        System.arraycopy(data, 0, ref, 512 * 1024, data.length);
        Files.write(raw, ref);
        Oracle.assertCompareIdentical(img, raw);
    }
}
