package io.diskmorph.fuzz;

import io.diskmorph.image.ExitCodes;
import io.diskmorph.testing.Dm;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.List;
import java.util.function.Consumer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The bad-input classes of QEMU's image-parser CVEs, built structurally (one
 * planted value at a known offset) and run through every command a user
 * has: info, map, check, check -r all, convert --in-place (dry run and
 * real). Each command either succeeds or prints one line naming the
 * structure and its offset, with a documented exit code and no stack trace;
 * none hangs or allocates past its bound; the file is byte-identical
 * afterwards, except after a repair that qemu-img would also make. Where
 * qemu-img has an answer (check's exit code, whether -r changes the file)
 * ours must equal it. QED-only header fields already covered by
 * QedHostileHeaderTest are not repeated here.
 */
class HostileImageTest {
    @TempDir
    Path dir;

    /**
     * @param name      what is wrong (the test name)
     * @param format    the driver concerned
     * @param image     the builder of the malformed file
     * @param openError when opening itself must fail: the text the one-line error must contain, else null
     * @param mapError  when map must fail: the text its one-line error must contain, else null
     */
    record Case(String name, String format, Builder image, String openError, String mapError) {
        @Override
        public String toString() {
            return format + ": " + name;
        }
    }

    @FunctionalInterface
    interface Builder {
        byte[] build() throws IOException;
    }

    static Builder qed(Consumer<QedBuilder> damage) {
        return () -> {
            QedBuilder b = QedBuilder.standard();
            damage.accept(b);
            return b.bytes();
        };
    }

    /**
     * A qcow (v1) image as qemu-img lays it out: 1 MiB, 4 KiB clusters and L2
     * tables, L1 at 48, the L2 table at 4 KiB mapping guest clusters 0 and 1
     * at 8 and 12 KiB; {@code damage} gets the file's bytes (big endian).
     */
    static Builder qcow(Consumer<ByteBuffer> damage) {
        return () -> {
            ByteBuffer b = ByteBuffer.allocate(16384).order(java.nio.ByteOrder.BIG_ENDIAN);
            b.putInt(0, 0x514649fb).putInt(4, 1).putLong(24, 1 << 20).put(32, (byte) 12).put(33, (byte) 9)
                    .putLong(40, 48);
            b.putLong(48, 4096).putLong(4096, 8192).putLong(4104, 12288);
            for (int i = 8192; i < 16384; i++) {
                b.put(i, (byte) (i / 4096));
            }
            damage.accept(b);
            return b.array();
        };
    }

    static Builder qcow2(Consumer<Qcow2Patcher> damage) {
        return () -> Qcow2Patcher.build("", damage);
    }

    /**
     * A qemu-made 8 MiB dynamic VHD (footer copy at 0, header at 0x200, BAT
     * at 0x600: block 0 at sector 4, block 2 at sector 0x1005) with one
     * planted value; the footers' and the header's checksums are sealed
     * afterwards, so only the planted value is wrong.
     */
    static Builder vpc(Consumer<ByteBuffer> damage) {
        return () -> {
            Path tmp = Files.createTempFile("hostile", ".vhd");
            try {
                Files.delete(tmp);
                Qemu.create(tmp, "vpc", "8M");
                Qemu.io(tmp, "vpc", "write -P 1 0 64k", "write -P 2 4M 64k");
                ByteBuffer b = ByteBuffer.wrap(Files.readAllBytes(tmp));
                damage.accept(b);
                int end = b.capacity() - 512;
                for (int[] sealed : new int[][]{{0, 512, 64}, {end, 512, 64}, {512, 1024, 36}}) {
                    b.putInt(sealed[0] + sealed[2], 0);
                    int sum = 0;
                    for (int i = sealed[0]; i < sealed[0] + sealed[1]; i++) {
                        sum += b.get(i) & 0xff;
                    }
                    b.putInt(sealed[0] + sealed[2], ~sum);
                }
                return b.array();
            } finally {
                Files.deleteIfExists(tmp);
            }
        };
    }

    /** Messages name the structure and the file offset of the bad entry. */
    private static final String QED_L1_ENTRY_0 = "QED L1 table at offset 0x1000";
    private static final String QED_L2_ENTRY_0 = "QED L2 table at offset 0x3000";

    static List<Case> cases() {
        return List.of(
                // offsets past EOF or misaligned
                new Case("L2 table offset past EOF", "qed", qed(b -> b.l1.put(0L, 0x100000L)), null, QED_L1_ENTRY_0),
                new Case("L2 table offset misaligned", "qed", qed(b -> b.l1.put(0L, 0x3008L)), null, QED_L1_ENTRY_0),
                new Case("L2 table crossing EOF", "qed", qed(b -> b.l1.put(0L, 0x6000L)), null, QED_L1_ENTRY_0),
                new Case("data cluster past EOF", "qed", qed(b -> b.l2.get(0x3000L).put(0L, 0x40000L)), null,
                        QED_L2_ENTRY_0),
                new Case("data cluster misaligned", "qed", qed(b -> b.l2.get(0x3000L).put(0L, 0x5001L)), null,
                        QED_L2_ENTRY_0),
                // integer overflow in offset arithmetic
                new Case("L2 table offset negative", "qed", qed(b -> b.l1.put(0L, 0xfffffffffffff000L)), null,
                        QED_L1_ENTRY_0),
                new Case("L2 table end overflows", "qed", qed(b -> b.l1.put(0L, 0x7ffffffffffff000L)), null,
                        QED_L1_ENTRY_0),
                new Case("data cluster offset negative", "qed", qed(b -> b.l2.get(0x3000L).put(0L, 0x8000000000000000L)),
                        null, QED_L2_ENTRY_0),
                new Case("L1 table end overflows", "qed", qed(b -> b.l1Offset = 0x7ffffffffffff000L),
                        "QED header at offset 0x28", "QED header at offset 0x28"),
                new Case("image size overflows", "qed", qed(b -> b.imageSize = 0x7ffffffffffffe00L),
                        "QED header at offset 0x30", "QED header at offset 0x30"),
                // header lengths that overflow 32 bits
                new Case("backing name offset + size wraps 32 bits", "qed",
                        qed(b -> {
                            b.features |= QedBuilder.F_BACKING_FILE;
                            b.backingNameOffset = 0xffffffffL;
                            b.backingNameSize = 2;
                        }), "QED header at offset 0x38", "QED header at offset 0x38"),
                // zero and absurd cluster sizes (division by zero)
                new Case("cluster size 0", "qed", qed(b -> b.clusterSize = 0), "QED header at offset 0x4",
                        "QED header at offset 0x4"),
                new Case("cluster size 2^31", "qed", qed(b -> {
                            b.clusterSize = 1L << 31;
                            b.fileLength = 0x7000;
                        }), "QED header at offset 0x4",
                        "QED header at offset 0x4"),
                // overlapping metadata
                new Case("L2 table is the L1 table", "qed", qed(b -> b.l1.put(0L, 0x1000L)), null, null),
                new Case("two L1 entries share one L2 table", "qed", qed(b -> b.l1.put(1L, 0x3000L)), null, null),
                new Case("data cluster is the L1 table", "qed", qed(b -> b.l2.get(0x3000L).put(0L, 0x1000L)), null, null),
                new Case("data cluster is its own L2 table", "qed", qed(b -> b.l2.get(0x3000L).put(0L, 0x3000L)), null,
                        null),
                new Case("two guest clusters share a data cluster", "qed", qed(b -> b.l2.get(0x3000L).put(5L, 0x5000L)),
                        null, null),

                // qcow2 (header fields already covered by Qcow2HostileTest are not repeated)
                // qemu reads an L2 table or snapshot table past EOF as zeros (unallocated, empty), and so do we
                new Case("L2 table offset past EOF", "qcow2",
                        qcow2(p -> p.putU64(p.l1EntryOffset(0), Qcow2Patcher.COPIED | 0x10000000L)), null, null),
                new Case("L2 table offset misaligned", "qcow2",
                        qcow2(p -> p.putU64(p.l1EntryOffset(0), Qcow2Patcher.COPIED | p.l2Offset(0) + 0x200)), null,
                        QCOW2_L1),
                new Case("L2 table offset at the top of the offset field", "qcow2",
                        qcow2(p -> p.putU64(p.l1EntryOffset(0), Qcow2Patcher.COPIED | Qcow2Patcher.OFFSET_MASK & -4096L)),
                        null, null),
                new Case("data cluster past EOF", "qcow2",
                        qcow2(p -> p.putU64(p.l2EntryOffset(0, 0), Qcow2Patcher.COPIED | 0x10000000L)), null, null),
                new Case("compressed cluster past EOF", "qcow2",
                        qcow2(p -> p.putU64(p.l2EntryOffset(0, 32), Qcow2Patcher.COMPRESSED | 0x10000000L)), null, null),
                new Case("refcount block past EOF", "qcow2",
                        qcow2(p -> p.putU64(p.reftableOffset(), 0x10000000L)), null, null),
                new Case("snapshot table past EOF", "qcow2", qcow2(p -> {
                    p.putU32(Qcow2Patcher.OFF_NB_SNAPSHOTS, 1);
                    p.putU64(Qcow2Patcher.OFF_SNAPSHOTS_OFFSET, 0x10000000L);
                }), null, null),
                new Case("L1 table at QEMU's 32 MiB cap", "qcow2",
                        qcow2(p -> p.putU32(Qcow2Patcher.OFF_L1_SIZE, (32 << 20) / 8)), null, null),
                new Case("L1 table one entry over QEMU's cap", "qcow2",
                        qcow2(p -> p.putU32(Qcow2Patcher.OFF_L1_SIZE, (32 << 20) / 8 + 1)), "qcow2 header at offset 0x24",
                        "qcow2 header at offset 0x24"),
                new Case("refcount table over QEMU's 8 MiB cap", "qcow2",
                        qcow2(p -> p.putU32(Qcow2Patcher.OFF_REFTABLE_CLUSTERS, (8 << 20) / 4096 + 1)),
                        "qcow2 header at offset 0x38", "qcow2 header at offset 0x38"),
                new Case("cluster_bits 0", "qcow2", qcow2(p -> p.putU32(Qcow2Patcher.OFF_CLUSTER_BITS, 0)),
                        "qcow2 header at offset 0x14", "qcow2 header at offset 0x14"),
                new Case("backing name offset + size overflows", "qcow2", qcow2(p -> {
                    p.putU64(Qcow2Patcher.OFF_BACKING_FILE_OFFSET, 0xfffffffffffffff0L);
                    p.putU32(16, 32);
                }), "qcow2 header at offset 0x8", "qcow2 header at offset 0x8"),
                new Case("L2 table is the L1 table", "qcow2",
                        qcow2(p -> p.putU64(p.l1EntryOffset(0), Qcow2Patcher.COPIED | p.l1Offset())), null, null),
                new Case("two L1 entries share one L2 table", "qcow2",
                        qcow2(p -> p.putU64(p.l1EntryOffset(1), p.u64(p.l1EntryOffset(0)))), null, null),
                new Case("data cluster is the refcount table", "qcow2",
                        qcow2(p -> p.putU64(p.l2EntryOffset(0, 1), Qcow2Patcher.COPIED | p.reftableOffset())), null,
                        null),

                // qcow (v1; header fields covered by QcowHostileTest are not repeated)
                new Case("L1 table end overflows", "qcow", qcow(b -> b.putLong(40, 0x7ffffffffffffff8L)),
                        "qcow header at offset 0x28", "qcow header at offset 0x28"),
                new Case("backing name offset + size overflows", "qcow", qcow(b -> {
                    b.putLong(8, 0x7ffffffffffffff0L);
                    b.putInt(16, 32);
                }), "qcow header at offset 0x8", "qcow header at offset 0x8"),
                new Case("L2 table offset negative", "qcow", qcow(b -> b.putLong(48, 0xfffffffffffff000L)), null,
                        "qcow L1 table at offset 0x30"),
                new Case("data cluster offset at the top of the offset field", "qcow",
                        qcow(b -> b.putLong(4096, 0x7ffffffffffff000L)), null, "qcow L2 table at offset 0x1000"),
                new Case("compressed cluster of size 0", "qcow", qcow(b -> b.putLong(4096, 0x8000000000002000L)),
                        null, "qcow L2 table at offset 0x1000"),
                new Case("L2 table is the L1 table", "qcow", qcow(b -> b.putLong(48, 48)), null,
                        "qcow L2 table at offset 0x30"),
                new Case("data cluster is its own L2 table", "qcow", qcow(b -> b.putLong(4096, 4096)), null, null),
                new Case("two guest clusters share a data cluster", "qcow", qcow(b -> b.putLong(4104, 8192)), null,
                        null),
                // VHD (qemu-img has no VHD check: check's codes are diskmorph's own, see VpcCheckTest)
                new Case("block size 0", "vpc", vpc(b -> b.putInt(0x220, 0)), "VHD dynamic header at offset 0x220",
                        "VHD dynamic header at offset 0x220"),
                new Case("block size not a power of two", "vpc", vpc(b -> b.putInt(0x220, 3 << 20)),
                        "VHD dynamic header at offset 0x220", "VHD dynamic header at offset 0x220"),
                new Case("block size 2^31", "vpc", vpc(b -> b.putInt(0x220, 1 << 31)), "VHD BAT at offset 0x600",
                        "VHD BAT at offset 0x600"),
                new Case("BAT entry count that overflows the table's size", "vpc",
                        vpc(b -> b.putInt(0x21c, 0x7fffffff)), "VHD dynamic header at offset 0x21c",
                        "VHD dynamic header at offset 0x21c"),
                new Case("BAT too small for the disk", "vpc", vpc(b -> b.putInt(0x21c, 1)),
                        "VHD dynamic header at offset 0x21c", "VHD dynamic header at offset 0x21c"),
                new Case("BAT past EOF", "vpc", vpc(b -> b.putLong(0x210, 0x10000000L)),
                        "VHD dynamic header at offset 0x210", "VHD dynamic header at offset 0x210"),
                new Case("BAT offset overflows", "vpc", vpc(b -> b.putLong(0x210, 0x7ffffffffffffe00L)),
                        "VHD dynamic header at offset 0x210", "VHD dynamic header at offset 0x210"),
                new Case("dynamic header past EOF", "vpc", vpc(b -> {
                    b.putLong(0x10, 0x10000000L);
                    b.putLong(b.capacity() - 512 + 0x10, 0x10000000L);
                }), "VHD footer at offset 0x10", "VHD footer at offset 0x10"),
                new Case("block past EOF", "vpc", vpc(b -> b.putInt(0x600, 0x00100000)), "VHD BAT at offset 0x600",
                        "VHD BAT at offset 0x600"),
                new Case("block over the BAT", "vpc", vpc(b -> b.putInt(0x600, 3)), null, null),
                new Case("two blocks share one block", "vpc", vpc(b -> b.putInt(0x604, b.getInt(0x600))), null,
                        null));
    }

    private static final String QCOW2_L1 = "qcow2 L1 table at offset 0x";

    @Test
    void theStandardQedImageIsValidForQemu() throws IOException {
        Path f = dir.resolve("standard.qed");
        Files.write(f, QedBuilder.standard().bytes());
        Qemu.Result check = Qemu.check(f, "qed");
        assertEquals(0, check.exitCode(), check.out() + check.err());
        List<Qemu.MapLine> map = Qemu.map(f, "qed");
        assertEquals(new Qemu.MapLine(0, 8192, 0, true, false, true, 0x5000), map.get(0));
        assertEquals(Qemu.map(f, "qed"), Dm.map(f, "qed"));
    }

    /**
     * Huge tables: QED's largest L1 (64 MiB clusters x 16 = 1 GiB) in a
     * sparse file, a QED L1 of 16 MiB over a 1 TiB disk and over a 4 EiB
     * disk, and a 1 PiB qcow2 (16 MiB L1) made by qemu-img. Every command runs in a JVM with a 64 MiB
     * heap, within the time bound: tables are paged, never loaded whole
     * past QEMU's caps.
     */
    @Test
    void hugeTablesFitASmallHeap() throws IOException {
        Path qedGiB = sparseQed("l1-1g.qed", 64L << 20, 16, 0);
        Path qedTiB = sparseQed("l1-16m.qed", 1L << 20, 16, 1L << 40);
        Path qcow2 = dir.resolve("1p.qcow2");
        Qemu.create(qcow2, "qcow2", "1P");
        // the largest disk QED allows (2^62 bytes), 17 MiB of file, 4 KiB on disk: qemu-img maps it in about
        // a second; asking the driver 1 GiB at a time took 2^32 queries (hours)
        Path qedEiB = sparseQed("4e.qed", 1L << 20, 16, 1L << 62);
        assertEquals(Qemu.map(qedEiB, "qed"),
                Qemu.MapLine.parse(Bounded.inSmallHeap(64, "map", "-f", "qed", "--output=json", qedEiB).ok().json()));
        for (Path f : List.of(qedGiB, qedTiB, qcow2, qedEiB)) {
            String before = digest(f);
            for (Object[] cmd : new Object[][]{{"info", f}, {"map", "--output=json", f}, {"check", f},
                    {"convert", "--in-place", "--dry-run", "-O", f.toString().endsWith("qed") ? "qcow2" : "qed", f}}) {
                Dm.Result r = Bounded.inSmallHeap(64, cmd);
                assertNoStackTrace(r);
                assertTrue(r.exitCode() == 0 || cmd[0].equals("check") && r.exitCode() == ExitCodes.CHECK_UNSUPPORTED
                        || cmd[0].equals("convert") && r.exitCode() != 1, cmd[0] + " " + f.getFileName() + ": "
                        + r.exitCode() + " " + r.err());
            }
            assertEquals(before, digest(f));
        }
    }

    /** A QED header with an empty L1 table right after it, the file sparse up to the table's end. */
    private Path sparseQed(String name, long clusterSize, long tableSize, long imageSize) throws IOException {
        QedBuilder b = new QedBuilder();
        b.clusterSize = clusterSize;
        b.tableSize = tableSize;
        b.l1Offset = clusterSize;
        b.imageSize = imageSize;
        b.fileLength = 64;
        Path f = dir.resolve(name);
        Files.write(f, b.bytes());
        try (java.io.RandomAccessFile raf = new java.io.RandomAccessFile(f.toFile(), "rw")) {
            raf.setLength(clusterSize + clusterSize * tableSize);
        }
        assertEquals(0, Qemu.img("info", "-f", "qed", f).exitCode(), "qemu opens " + name);
        return f;
    }

    /**
     * Fuzz finding (convertInPlace/raw-length-not-a-sector-multiple): a raw
     * file of 52036 bytes is a 52224-byte disk for qemu (whole sectors, the
     * tail reads as zeros); diskmorph saw 52036, so an in-place conversion
     * seemed to change the disk size.
     */
    @Test
    void rawFileWhoseLengthIsNotASectorMultipleIsTheDiskQemuSees() throws IOException {
        Path f = dir.resolve("odd.raw");
        byte[] content = new byte[52036];
        new java.util.Random(7).nextBytes(content);
        java.util.Arrays.fill(content, 8192, 20000, (byte) 0);
        Files.write(f, content);
        var q = Qemu.img("info", "--output=json", "-f", "raw", f).ok().json();
        var d = Dm.run("info", "--output=json", f).ok().json();
        assertEquals(q.get("virtual-size"), d.get("virtual-size"));
        assertEquals(Qemu.map(f, "raw"), Dm.map(f, "raw"));
        Path copy = dir.resolve("copy.raw");
        Files.copy(f, copy);
        Dm.run("convert", "--in-place", "-O", "qed", "-o", "cluster_size=4k", f).ok();
        assertEquals(0, Qemu.check(f, "qed").exitCode());
        assertEquals(q.get("virtual-size"), Qemu.img("info", "--output=json", f).ok().json().get("virtual-size"));
        assertEquals(0, Qemu.img("compare", "-f", "raw", "-F", "qed", copy, f).exitCode(), "same guest bytes");
    }

    /**
     * Fuzz finding (convertInPlace/qcow2-size-not-a-sector-multiple): qemu
     * keeps whole sectors of a qcow2 header size (8 MiB - 256 bytes is an
     * 8 MiB - 512 disk); diskmorph used the header value, so a conversion to QED
     * rounded it up and changed the disk size.
     */
    @Test
    void qcow2SizeNotASectorMultipleIsTheDiskQemuSees() throws IOException {
        Path f = dir.resolve("odd.qcow2");
        Files.write(f, Qcow2Patcher.build("", p -> p.putU64(24, (8L << 20) - 256)));
        var q = Qemu.img("info", "--output=json", f).ok().json();
        assertEquals(q.get("virtual-size"), Dm.run("info", "--output=json", f).ok().json().get("virtual-size"));
        assertEquals(Qemu.map(f, "qcow2"), Dm.map(f, "qcow2"));
        Path want = dir.resolve("want.raw");
        Qemu.toRaw(f, "qcow2", want);
        Dm.run("convert", "--in-place", "-O", "qed", f).ok();
        assertEquals(q.get("virtual-size"), Qemu.img("info", "--output=json", f).ok().json().get("virtual-size"));
        assertEquals(0, Qemu.img("compare", "-f", "raw", "-F", "qed", want, f).exitCode(), "same guest bytes");
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("cases")
    void everyCommandRefusesOrCopesAndLeavesTheFileAlone(Case c) throws IOException {
        Path f = dir.resolve("bad." + c.format());
        Files.write(f, c.image().build());
        long length = Files.size(f);
        String before = digest(f);

        Dm.Result info = Bounded.cli(length, "info", "-f", c.format(), f);
        if (c.openError() == null) {
            assertEquals(0, info.exitCode(), info.err());
        } else {
            assertEquals(ExitCodes.CORRUPT, info.exitCode(), info.err());
            assertTrue(info.oneLineError().contains(c.openError()), info.err());
        }
        Dm.Result map = Bounded.cli(length, "map", "-f", c.format(), "--output=json", f);
        if (c.mapError() == null) {
            assertEquals(0, map.exitCode(), map.err());
        } else {
            assertEquals(ExitCodes.CORRUPT, map.exitCode(), map.err());
            assertTrue(map.oneLineError().contains(c.mapError()), map.err());
        }
        assertEquals(before, digest(f), "info and map leave the file alone");

        // check: qemu-img's exit code, no stack trace
        Dm.Result check = Bounded.cli(length, "check", "-f", c.format(), f);
        int qemuCheck = Qemu.img("check", "-f", c.format(), f).exitCode();
        // qemu-img 7.2 has no qcow or VHD check (63): ours is judged by the drivers' own tests
        if (check.exitCode() != ExitCodes.CHECK_UNSUPPORTED && qemuCheck != ExitCodes.CHECK_UNSUPPORTED) {
            assertEquals(qemuCheck, check.exitCode(), "check exit code as qemu-img's: " + check.err() + check.out());
        }
        assertNoStackTrace(check);
        assertEquals(before, digest(f), "check leaves the file alone");

        // check -r all: changes the file exactly when qemu-img's repair does
        Path ours = dir.resolve("ours." + c.format());
        Path theirs = dir.resolve("theirs." + c.format());
        Files.copy(f, ours);
        Files.copy(f, theirs);
        Dm.Result repair = Bounded.cli(length, "check", "-r", "all", "-f", c.format(), ours);
        Qemu.Result qemuRepair = Qemu.img("check", "-r", "all", "-f", c.format(), theirs);
        assertNoStackTrace(repair);
        if (repair.exitCode() != ExitCodes.CHECK_UNSUPPORTED && qemuRepair.exitCode() != ExitCodes.CHECK_UNSUPPORTED) {
            assertEquals(qemuRepair.exitCode(), repair.exitCode(), "check -r all exit code as qemu-img's: "
                    + repair.err() + repair.out() + " / qemu: " + qemuRepair.err() + qemuRepair.out());
        }
        if (digest(theirs).equals(before)) {
            assertEquals(before, digest(ours), "qemu-img cannot repair this; the file stays byte-identical");
        }

        // convert --in-place (to bigger clusters, and to the same clusters so data can stay in place)
        for (String options : List.of("cluster_size=64k", "cluster_size=4k,table_size=4")) {
            convertInPlace(c, f, before, "qed", options);
        }
        for (String options : List.of("cluster_size=64k", "cluster_size=4k,refcount_bits=4")) {
            convertInPlace(c, f, before, "qcow2", options);
        }
    }

    /** A dry run never writes; a refusal leaves the file byte-identical and no journal; a success is clean. */
    private void convertInPlace(Case c, Path f, String before, String target, String options) throws IOException {
        long length = Files.size(f);
        Dm.Result dry = Bounded.cli(length, "convert", "--in-place", "--dry-run", "-O", target, "-o", options, f);
        assertNoStackTrace(dry);
        assertEquals(before, digest(f), "a dry run leaves the file alone");
        Path converted = dir.resolve("converted." + c.format());
        Files.copy(f, converted, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        Dm.Result convert = Bounded.cli(length, "convert", "--in-place", "-O", target, "-o", options, converted);
        assertNoStackTrace(convert);
        assertFalse(Files.exists(dir.resolve(converted.getFileName() + ".dmjournal")), "no journal left");
        if (convert.exitCode() != 0) {
            assertTrue(convert.exitCode() == ExitCodes.CORRUPT || convert.exitCode() == ExitCodes.UNSUPPORTED,
                    "refusal exit code: " + convert.err());
            convert.oneLineError();
            assertEquals(before, digest(converted), "a refused conversion leaves the file byte-identical");
        } else {
            // converted: qemu-img agrees it is a clean image with the guest bytes qemu read before
            assertEquals(0, Qemu.check(converted, target).exitCode(), "converted image checks clean");
            Path want = dir.resolve("want.raw");
            Path got = dir.resolve("got.raw");
            Files.deleteIfExists(want);
            Files.deleteIfExists(got);
            Qemu.toRaw(f, c.format(), want);
            Qemu.toRaw(converted, target, got);
            assertEquals(0, Qemu.compare(want, got), "same guest bytes after conversion (" + target + " " + options + ")");
        }
    }

    static void assertNoStackTrace(Dm.Result r) {
        assertFalse(r.err().contains("\tat ") || r.err().contains("Exception") || r.err().contains("internal error"),
                "no stack trace or internal error: " + r.err());
        assertNotEquals(null, r.err());
    }

    static String digest(Path f) throws IOException {
        try {
            MessageDigest md = MessageDigest.getInstance("SHA-256");
            try (java.io.InputStream in = Files.newInputStream(f)) { // streamed: some files are 1 GiB sparse
                byte[] buf = new byte[1 << 20];
                for (int n; (n = in.read(buf)) > 0; ) {
                    md.update(buf, 0, n);
                }
            }
            return HexFormat.of().formatHex(md.digest()) + ":" + Files.size(f);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
