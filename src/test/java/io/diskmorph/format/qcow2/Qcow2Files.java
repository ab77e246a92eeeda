package io.diskmorph.format.qcow2;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;

/**
 * Byte-level access to qcow2 files for planting damage at offsets computed
 * from the parsed header and tables (the driver's own codecs read them).
 */
final class Qcow2Files {
    private Qcow2Files() {
    }

    /** The parsed header of {@code f}. */
    static Qcow2Header header(Path f) throws IOException {
        try (var s = io.diskmorph.storage.FileStorage.open(f, true, io.diskmorph.storage.LockMode.NONE)) {
            return Qcow2Header.read(s, true);
        }
    }

    static long u64(Path f, long at) throws IOException {
        return read(f, at, 8).getLong(0);
    }

    static int u32(Path f, long at) throws IOException {
        return read(f, at, 4).getInt(0);
    }

    static void putU64(Path f, long at, long v) throws IOException {
        write(f, at, ByteBuffer.allocate(8).putLong(0, v));
    }

    static void putU32(Path f, long at, int v) throws IOException {
        write(f, at, ByteBuffer.allocate(4).putInt(0, v));
    }

    /** File offset of the L2 entry that maps guest offset {@code guest} (its L2 table must exist). */
    static long l2Entry(Path f, long guest) throws IOException {
        Qcow2Header h = header(f);
        Qcow2Geometry g = Qcow2Geometry.of(h);
        long l2 = u64(f, h.l1TableOffset + (guest >>> g.l1Shift) * 8) & L1Entry.OFFSET_MASK;
        if (l2 == 0) {
            throw new IllegalStateException("no L2 table for guest offset " + guest);
        }
        return l2 + ((guest >>> g.clusterBits) & (g.l2Entries - 1)) * 8L * g.entryWords;
    }

    /** File offset of the L1 entry for guest offset {@code guest}. */
    static long l1Entry(Path f, long guest) throws IOException {
        Qcow2Header h = header(f);
        return h.l1TableOffset + (guest >>> Qcow2Geometry.of(h).l1Shift) * 8;
    }

    /** Host cluster index of guest offset {@code guest}'s data (a standard, uncompressed entry). */
    static long dataCluster(Path f, long guest) throws IOException {
        Qcow2Geometry g = Qcow2Geometry.of(header(f));
        return (u64(f, l2Entry(f, guest)) & L2Entry.OFFSET_MASK) >>> g.clusterBits;
    }

    static long refcount(Path f, long cluster) throws IOException {
        Qcow2Header h = header(f);
        Qcow2Geometry g = Qcow2Geometry.of(h);
        long block = u64(f, h.refcountTableOffset + (cluster >>> g.refblockBits) * 8)
                & Refcounts.TABLE_OFFSET_MASK;
        byte[] b = read(f, block, (int) g.clusterSize).array();
        return Refcounts.entry(b, (int) (cluster & (g.refblockEntries() - 1)), g.refcountOrder);
    }

    static void setRefcount(Path f, long cluster, long value) throws IOException {
        Qcow2Header h = header(f);
        Qcow2Geometry g = Qcow2Geometry.of(h);
        long block = u64(f, h.refcountTableOffset + (cluster >>> g.refblockBits) * 8)
                & Refcounts.TABLE_OFFSET_MASK;
        byte[] b = read(f, block, (int) g.clusterSize).array();
        Refcounts.setEntry(b, (int) (cluster & (g.refblockEntries() - 1)), g.refcountOrder, value);
        write(f, block, ByteBuffer.wrap(b));
    }

    static void extend(Path f, long length) throws IOException {
        try (FileChannel ch = FileChannel.open(f, StandardOpenOption.WRITE)) {
            ch.write(ByteBuffer.allocate(1), length - 1);
        }
    }

    static String digest(Path f) throws IOException {
        try {
            MessageDigest md = MessageDigest.getInstance("SHA-256");
            return HexFormat.of().formatHex(md.digest(Files.readAllBytes(f))) + "/" + Files.size(f);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    private static ByteBuffer read(Path f, long at, int len) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(len);
        try (FileChannel ch = FileChannel.open(f, StandardOpenOption.READ)) {
            while (b.hasRemaining() && ch.read(b, at + b.position()) > 0) {
                // keep reading
            }
        }
        return b.clear();
    }

    private static void write(Path f, long at, ByteBuffer b) throws IOException {
        try (FileChannel ch = FileChannel.open(f, StandardOpenOption.WRITE)) {
            while (b.hasRemaining()) {
                ch.write(b, at + b.position());
            }
        }
    }
}
