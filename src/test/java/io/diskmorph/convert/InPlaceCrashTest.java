package io.diskmorph.convert;

import io.diskmorph.image.DiskImage;
import io.diskmorph.image.Images;
import io.diskmorph.storage.MemoryStorage;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Map;
import java.util.Set;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Crash-point tests of in-place conversion and rollback: a power failure at
 * any write of the run, with unsynced writes lost, kept, reordered or torn,
 * leaves the source, the target, or a state recover turns into one of them.
 */
class InPlaceCrashTest {
    @TempDir
    Path dir;

    static Stream<Arguments> conversions() {
        return Stream.of(
                Arguments.of("raw", "qcow2", "", ""),
                Arguments.of("raw", "qcow2", "", "cluster_size=4k,refcount_bits=1"),
                Arguments.of("raw", "qed", "", ""),
                Arguments.of("raw", "qed", "", "cluster_size=4k"),
                Arguments.of("qed", "qcow2", "cluster_size=64k", ""),
                Arguments.of("qed", "qcow2", "cluster_size=4k", "compat=0.10"),
                Arguments.of("qcow2", "qed", "cluster_size=64k", ""),
                Arguments.of("qcow2", "qed", "cluster_size=4k", ""),
                // a qcow2 made in place from raw: data at its guest offsets, holes between (identity holes)
                Arguments.of("qcow2", "qed", "from-raw", ""),
                Arguments.of("qcow2", "qcow2", "cluster_size=64k", "refcount_bits=64"),
                Arguments.of("qcow2", "qcow2", "cluster_size=4k", "cluster_size=16k"),
                Arguments.of("qcow2", "qcow2", "cluster_size=64k", "extended_l2=on"),
                Arguments.of("qed", "qed", "cluster_size=4k", "cluster_size=64k,table_size=2"),
                // a monolithicSparse VMDK: grains stay, the header, descriptor and grain tables become space
                Arguments.of("vmdk", "qcow2", "", ""),
                Arguments.of("vmdk", "qed", "", ""),
                // zeroed grains leave a dead grain below the data: QED moves the data above it down
                Arguments.of("vmdk", "qed", "zeroed_grain=on", ""),
                // every grain deflated: all data moves, over the compressed grains it is read from
                Arguments.of("vmdk", "qcow2", "subformat=streamOptimized", ""),
                // to a monolithicSparse VMDK: the header zone's grain moves, tables and directories go past the data
                Arguments.of("raw", "vmdk", "", ""),
                Arguments.of("qcow2", "vmdk", "cluster_size=64k", "zeroed_grain=on"),
                Arguments.of("qed", "vmdk", "cluster_size=4k", ""),
                // a dynamic VHDX: payload blocks stay, the header section, log, BAT and metadata become space
                // (qcow2 at 64 KiB clusters: at the default, which follows the 1 MiB block, most writes clear
                // metadata clusters in the zeros of the old log, giving no crash state of their own)
                Arguments.of("vhdx", "qcow2", "block_size=1M", "cluster_size=64k"),
                Arguments.of("vhdx", "qed", "block_size=1M", ""),
                // a fixed VHDX: unwritten blocks are holes of the file, left unallocated
                Arguments.of("vhdx", "qcow2", "subformat=fixed,block_size=1M,block_state_zero=off",
                        "cluster_size=64k"),
                // to a dynamic VHDX: the header section's MiB moves, the BAT, metadata and log go past the data
                Arguments.of("raw", "vhdx", "", ""),
                Arguments.of("qcow2", "vhdx", "cluster_size=64k", ""),
                Arguments.of("qed", "vhdx", "cluster_size=64k", "block_size=2M"),
                // a qemu-made VDI: data 512-aligned after the map, every block moves (1 MiB clusters)
                Arguments.of("vdi", "qcow2", "", ""),
                // a VDI as VirtualBox lays it out: map at 1 MiB, data at 2 MiB; every block stays
                Arguments.of("vdi", "qcow2", "virtualbox", ""),
                Arguments.of("vdi", "qed", "virtualbox", "cluster_size=64k"),
                // VDI targets: the block under the header moves, host blocks are packed densely after the map
                Arguments.of("raw", "vdi", "", ""),
                Arguments.of("qcow2", "vdi", "cluster_size=64k", ""),
                // qcow v1 (4 KiB clusters): every cluster stays, the header, L1 and L2 tables become space
                Arguments.of("qcow", "qcow2", "", ""),
                Arguments.of("qcow", "qed", "", ""),
                // Parallels as qemu-img makes it: data clusters after the BAT's cluster, every one stays
                Arguments.of("parallels", "qcow2", "", ""),
                Arguments.of("parallels", "qed", "cluster_size=64k", ""),
                // Parallels targets: the cluster under the header and BAT moves, the rest is packed densely
                Arguments.of("raw", "parallels", "", "cluster_size=64k"),
                Arguments.of("qcow2", "parallels", "cluster_size=64k", ""),
                // a fixed VHD is raw data and a footer: to raw the footer goes, from raw it is appended
                Arguments.of("vpc", "raw", "subformat=fixed", ""),
                Arguments.of("raw", "vpc", "", "force_size=on"),
                // a fixed VHD to qcow2: the data stays, the footer past the disk becomes space
                Arguments.of("vpc", "qcow2", "subformat=fixed", ""),
                // a dynamic VHD: block data 512 bytes after each block's bitmap; at 512-byte clusters all stays
                Arguments.of("vpc", "qcow2", "", "cluster_size=512"),
                Arguments.of("vpc", "qed", "subformat=fixed", ""));
    }

    @ParameterizedTest(name = "{0} -> {1}")
    @MethodSource("conversions")
    void conversionSurvivesACrashAtAnyWrite(String from, String to, String createOpts, String targetOpts)
            throws IOException {
        byte[] source = sourceImage(from, createOpts);
        byte[] guest = guestBytes(source, from);
        CrashSim sim = new CrashSim(Map.of(CrashChecker.IMAGE, source));
        InPlaceConverter.convert(CrashChecker.file(sim), new InPlaceConverter.Request(from, to,
                io.diskmorph.image.FormatOptions.parseList(targetOpts), false), InPlaceConverter.Progress.NONE);
        assertTrue(sim.log.size() > 5, "the conversion was recorded");
        CrashChecker checker = new CrashChecker(new java.util.HashSet<>(java.util.List.of(from, to)), guest, dir);
        checker.checkAll(sim, 8, 4);
        System.out.printf("crash test %s -> %s: %d logged operations, %s%n", from, to, sim.log.size(), checker.summary());
        // a VirtualBox-layout VDI to qcow2 writes mostly zeroed tables into the zeros of the 1 MiB alignment
        // padding before the data: those writes change no byte, so their prefixes share states
        // (so does a Parallels file to qcow2 at 1 MiB clusters, into the zeros of the BAT's cluster)
        long expected = (createOpts.equals("virtualbox") || from.equals("parallels")) && to.equals("qcow2")
                ? sim.log.size() / 3 : sim.log.size();
        if (from.equals("raw") && to.equals("vpc") || from.equals("vpc") && to.equals("raw")) {
            // a fixed VHD <-> raw writes one sector: most logged steps are syncs of the journal and directory
            expected = sim.log.size() / 2;
        }
        assertTrue(checker.statesChecked >= expected, "every prefix gave a state of its own, some several");
    }

    @ParameterizedTest(name = "{0} -> {1} and back")
    @MethodSource("conversions")
    void rollbackSurvivesACrashAtAnyWrite(String from, String to, String createOpts, String targetOpts)
            throws IOException {
        byte[] source = sourceImage(from, createOpts);
        byte[] guest = guestBytes(source, from);
        CrashSim sim = new CrashSim(Map.of(CrashChecker.IMAGE, source));
        InPlaceConverter.convert(CrashChecker.file(sim), new InPlaceConverter.Request(from, to,
                io.diskmorph.image.FormatOptions.parseList(targetOpts), true), InPlaceConverter.Progress.NONE);
        Map<String, byte[]> converted = sim.crashState(sim.log.size(), CrashSim.FileFate.NONE, true, 0);
        assertTrue(converted.containsKey(CrashChecker.IMAGE + ".dmrollback"), "rollback record kept");

        CrashSim rb = new CrashSim(converted);
        Recovery.rollback(CrashChecker.file(rb));
        Map<String, byte[]> done = rb.crashState(rb.log.size(), CrashSim.FileFate.NONE, true, 0);
        assertArrayEquals(source, done.get(CrashChecker.IMAGE), "rollback restores the original file byte for byte");
        assertEquals(Set.of(CrashChecker.IMAGE), done.keySet(), "no journal left behind");

        CrashChecker checker = new CrashChecker(new java.util.HashSet<>(java.util.List.of(from, to)), guest, dir);
        checker.checkAll(rb, 8, 4);
        System.out.printf("crash test rollback %s -> %s: %d logged operations, %s%n", to, from, rb.log.size(),
                checker.summary());
    }

    /** A small image made by qemu-img/qemu-io: scattered data, partial clusters, zeros. */
    private byte[] sourceImage(String format, String createOpts) throws IOException {
        Path p = dir.resolve("src." + format);
        if (createOpts.equals("from-raw")) {
            Qemu.create(p, "raw", "3M");
            Qemu.io(p, "raw", "write -P 0x11 256k 64k", "write -P 0x22 1M 128k", "write -P 0x33 2M 64k",
                    "write -P 0x44 2944k 64k");
            io.diskmorph.testing.Dm.run("convert", "--in-place", "-f", "raw", "-O", format, p).ok();
            return Files.readAllBytes(p);
        }
        if (createOpts.equals("virtualbox")) {
            return virtualBoxVdi();
        }
        if (createOpts.equals("subformat=streamOptimized")) {
            // qemu writes a stream only in whole grains, in order: made from a raw with the same writes
            Path raw = dir.resolve("stream-content.raw");
            Qemu.create(raw, "raw", "3M");
            Qemu.io(raw, "raw", "write -P 0x11 0 64k", "write -P 0x22 100k 8k", "write -P 0x33 1M 200k",
                    "write -P 0x44 2900k 3k");
            Qemu.img("convert", "-f", "raw", "-O", format, "-o", createOpts, raw, p).ok();
            return Files.readAllBytes(p);
        }
        if (createOpts.isEmpty()) {
            Qemu.create(p, format, "3M");
        } else {
            Qemu.create(p, format, "3M", createOpts);
        }
        Qemu.io(p, format, "write -P 0x11 0 64k", "write -P 0x22 100k 8k", "write -P 0x33 1M 200k",
                "write -P 0x44 2900k 3k");
        if (!format.equals("raw")) {
            Qemu.io(p, format, "write -z 1536k 128k");
        }
        if (createOpts.contains("zeroed_grain=on")) {
            Qemu.io(p, format, "write -z 0 64k"); // the grain that held it is dead space now, below the others
        }
        return Files.readAllBytes(p);
    }

    /**
     * A 3 MiB VDI laid out as VirtualBox lays it out (VDICore.h: the map at
     * 1 MiB, the data at the next MiB boundary): guest block 0 at host block
     * 1, block 2 at host block 0 (partly written), block 1 discarded.
     */
    private static byte[] virtualBoxVdi() {
        int mib = 1 << 20;
        ByteBuffer b = ByteBuffer.allocate(4 * mib).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        b.put("<<< Oracle VM VirtualBox Disk Image >>>\n".getBytes(java.nio.charset.StandardCharsets.US_ASCII));
        b.putInt(0x40, 0xbeda107f).putInt(0x44, 0x00010001).putInt(0x48, 0x190).putInt(0x4c, 1)
                .putInt(0x154, mib).putInt(0x158, 2 * mib).putInt(0x168, 512).putLong(0x170, 3L * mib)
                .putInt(0x178, mib).putInt(0x180, 3).putInt(0x184, 2).putInt(0x188, 0x12345678);
        b.putInt(mib, 1).putInt(mib + 4, 0xfffffffe).putInt(mib + 8, 0);
        for (int i = 0; i < mib; i++) {
            b.put(3 * mib + i, (byte) (0x11 + i / 4096 % 7)); // guest block 0
            if (i < 300 * 1024) {
                b.put(2 * mib + i, (byte) 0x44); // guest block 2, its first 300 KiB
            }
        }
        return b.array();
    }

    private static byte[] guestBytes(byte[] image, String format) throws IOException {
        try (DiskImage img = Images.open(MemoryStorage.of("src", image), format, true)) {
            byte[] g = new byte[Math.toIntExact(img.virtualSize())];
            img.read(ByteBuffer.wrap(g), 0);
            assertFalse(Arrays.equals(g, new byte[g.length]), "test image has data");
            return g;
        }
    }
}
