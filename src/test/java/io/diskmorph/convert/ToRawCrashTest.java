package io.diskmorph.convert;

import io.diskmorph.image.DiskImage;
import io.diskmorph.image.FormatOptions;
import io.diskmorph.image.Images;
import io.diskmorph.image.NotEnoughSpaceException;
import io.diskmorph.storage.MemoryStorage;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Crash-point tests of the in-place conversion to raw: a power failure at
 * any write of the roll-forward or of the journaled last step, with
 * unsynced writes lost, kept, reordered or torn, leaves a valid source
 * image (leaked clusters allowed, no corruption) or the raw file, with the
 * original guest content, or a state recover turns into one of them.
 */
class ToRawCrashTest {
    @TempDir
    Path dir;

    @ParameterizedTest(name = "{0} {1} -> raw")
    @CsvSource({
            "qcow2, cluster_size=64k, 2M",
            "qcow2, cluster_size=4k;compat=0.10, 520k",
            "qcow2, cluster_size=4k;refcount_bits=1, 512k",
            "qed, cluster_size=64k;table_size=2, 2M",
            "qed, cluster_size=4k;table_size=2, 520k",
            "vmdk, zeroed_grain=on, 2M",
            "vmdk, subformat=monolithicSparse, 1500k",
            "qcow, encryption=off, 520k",
            "parallels, cluster_size=64k, 2M",
            "parallels, cluster_size=4k, 520k"})
    void survivesACrashAtAnyWrite(String format, String createOpts, String size) throws IOException {
        byte[] source = scrambled(format, createOpts.replace(';', ','), size, 11);
        byte[] guest = guestBytes(source, format);
        CrashSim sim = new CrashSim(Map.of(CrashChecker.IMAGE, source));
        ConversionPlan plan = InPlaceConverter.convert(CrashChecker.file(sim),
                new InPlaceConverter.Request(format, "raw", FormatOptions.parseList(""), false),
                InPlaceConverter.Progress.NONE);
        assertTrue(plan.movedUnits() > 10, "units moved: " + plan.movedUnits());
        Map<String, byte[]> end = sim.crashState(sim.log.size(), CrashSim.FileFate.NONE, true, 0);
        assertEquals(Set.of(CrashChecker.IMAGE), end.keySet(), "no journal left behind");
        assertArrayEquals(guest, end.get(CrashChecker.IMAGE), "the file is the guest's bytes, nothing more");

        CrashChecker checker = new CrashChecker(Set.of(format, "raw"), guest, dir);
        checker.leaksAllowed = Set.of(format);
        checker.checkAll(sim, 16, 8);
        System.out.printf("crash test %s -> raw: %d logged operations, %s%n", format, sim.log.size(),
                checker.summary());
        assertTrue(checker.statesChecked >= sim.log.size(), "every prefix gave a state of its own");
        assertTrue(checker.recoveriesRun > 0, "some crash states fell in the journaled last step");

        // a crash in the middle of the rounds leaves the source format, which a new run finishes
        for (int k = 1; k <= 3; k++) {
            Map<String, byte[]> state = sim.crashState(sim.log.size() * k / 4, CrashSim.FileFate.RANDOM, true, k);
            assertEquals(Set.of(CrashChecker.IMAGE), state.keySet(), "mid-roll-forward: no journal");
            CrashSim again = new CrashSim(state);
            InPlaceConverter.convert(CrashChecker.file(again), new InPlaceConverter.Request(null, "raw", Map.of(),
                    false), InPlaceConverter.Progress.NONE);
            assertArrayEquals(guest, again.crashState(again.log.size(), CrashSim.FileFate.NONE, true, 0)
                    .get(CrashChecker.IMAGE), "a new run after a crash at " + k + "/4 of the log");
        }
    }

    /**
     * A source whose driver cannot move its own units goes through qcow2
     * ({@link ToRawVia}): a crash in the first step leaves the source or
     * qcow2 (or a journal recover finishes), in the second a valid qcow2
     * image (leaks allowed) or raw; a new run from any journal-free state
     * ends in the raw file.
     */
    @ParameterizedTest(name = "{0} {1} -> raw through qcow2")
    @CsvSource({"vdi, static=off, 2M", "vhdx, block_size=1M;log_size=1M, 3M"})
    void throughQcow2SurvivesACrashAtAnyWrite(String format, String createOpts, String size) throws IOException {
        byte[] source = scrambled(format, createOpts.replace(';', ','), size, 13);
        byte[] guest = guestBytes(source, format);
        CrashSim sim = new CrashSim(Map.of(CrashChecker.IMAGE, source));
        ConversionPlan plan = InPlaceConverter.convert(CrashChecker.file(sim),
                new InPlaceConverter.Request(format, "raw", FormatOptions.parseList(""), false),
                InPlaceConverter.Progress.NONE);
        assertTrue(plan.policy().contains("qcow2"), plan.policy());
        Map<String, byte[]> end = sim.crashState(sim.log.size(), CrashSim.FileFate.NONE, true, 0);
        assertEquals(Set.of(CrashChecker.IMAGE), end.keySet(), "no journal left behind");
        assertArrayEquals(guest, end.get(CrashChecker.IMAGE), "the file is the guest's bytes, nothing more");

        CrashChecker checker = new CrashChecker(Set.of(format, "qcow2", "raw"), guest, dir);
        checker.leaksAllowed = Set.of("qcow2");
        checker.checkAll(sim, 16, 8);
        System.out.printf("crash test %s -> raw through qcow2: %d logged operations, %s%n", format, sim.log.size(),
                checker.summary());
        assertTrue(checker.recoveriesRun > 0, "crash states fell in the journaled steps");

        int continued = 0;
        for (int k = 1; k <= 7; k++) {
            Map<String, byte[]> state = sim.crashState(sim.log.size() * k / 8, CrashSim.FileFate.RANDOM, true, k);
            if (state.containsKey(CrashChecker.IMAGE + ".dmjournal")) {
                continue; // inside a journaled step: recover's part, checked above
            }
            CrashSim again = new CrashSim(state);
            InPlaceConverter.convert(CrashChecker.file(again), new InPlaceConverter.Request(null, "raw", Map.of(),
                    false), InPlaceConverter.Progress.NONE);
            assertArrayEquals(guest, again.crashState(again.log.size(), CrashSim.FileFate.NONE, true, 0)
                    .get(CrashChecker.IMAGE), "a new run after a crash at " + k + "/8 of the log");
            continued++;
        }
        assertTrue(continued >= 3, "states outside the journaled steps: " + continued);
    }

    /**
     * Guest unit 0 written after others, so its data sits in the home of a
     * unit that reads zeros (the conformance suite's qcow2 64k sample found
     * it): it must leave that home before the last step, or the raw file
     * would show it there.
     */
    @ParameterizedTest(name = "{0}")
    @CsvSource({"qcow2, cluster_size=64k", "qed, cluster_size=64k;table_size=2", "vmdk, zeroed_grain=on",
            "qcow, encryption=off", "parallels, cluster_size=64k"})
    void firstUnitParkedInAnEmptyHome(String format, String createOpts) throws IOException {
        Path p = dir.resolve("first." + format);
        Qemu.create(p, format, "2M", createOpts.replace(';', ','));
        Qemu.io(p, format, "write -P 0x22 1M 64k", "write -P 0x11 0 64k", "write -P 0x33 1984k 64k");
        byte[] source = Files.readAllBytes(p);
        byte[] guest = guestBytes(source, format);
        CrashSim sim = new CrashSim(Map.of(CrashChecker.IMAGE, source));
        InPlaceConverter.convert(CrashChecker.file(sim), new InPlaceConverter.Request(format, "raw", Map.of(), false),
                InPlaceConverter.Progress.NONE);
        assertArrayEquals(guest, sim.crashState(sim.log.size(), CrashSim.FileFate.NONE, true, 0)
                .get(CrashChecker.IMAGE));
        CrashChecker checker = new CrashChecker(Set.of(format, "raw"), guest, dir);
        checker.leaksAllowed = Set.of(format);
        checker.checkAll(sim, 8, 2);
    }

    /**
     * A cancel request (SIGINT) between rounds stops the run there: the file
     * is the source format, checked clean but for leaks, with the same guest
     * content, and no journal; a new run finishes it.
     */
    @Test
    void cancelBetweenRoundsLeavesTheSourceFormat() throws IOException {
        byte[] source = scrambled("qcow2", "cluster_size=4k", "512k", 5);
        byte[] guest = guestBytes(source, "qcow2");
        CrashSim sim = new CrashSim(Map.of(CrashChecker.IMAGE, source));
        Cancellation cancel = new Cancellation();
        int[] rounds = {0};
        InPlaceConverter.Progress progress = (phase, done, total) -> {
            if (phase.equals("move") && done > 0 && ++rounds[0] == 3) {
                cancel.request("SIGINT");
            }
        };
        assertThrows(Cancellation.CancelledException.class, () -> InPlaceConverter.convert(CrashChecker.file(sim),
                new InPlaceConverter.Request("qcow2", "raw", Map.of(), false), progress, cancel));
        Map<String, byte[]> state = sim.crashState(sim.log.size(), CrashSim.FileFate.NONE, true, 0);
        assertEquals(Set.of(CrashChecker.IMAGE), state.keySet(), "no journal");
        assertFalse(java.util.Arrays.equals(source, state.get(CrashChecker.IMAGE)), "some units moved");
        CrashChecker checker = new CrashChecker(Set.of("qcow2"), guest, dir);
        checker.leaksAllowed = Set.of("qcow2");
        checker.verifyImage(state.get(CrashChecker.IMAGE), "cancelled", true);

        CrashSim again = new CrashSim(state);
        InPlaceConverter.convert(CrashChecker.file(again), new InPlaceConverter.Request("qcow2", "raw", Map.of(),
                false), InPlaceConverter.Progress.NONE);
        assertArrayEquals(guest, again.crashState(again.log.size(), CrashSim.FileFate.NONE, true, 0)
                .get(CrashChecker.IMAGE));
    }

    /**
     * A VMDK cancelled mid-way is a monolithicSparse VMDK that qemu-img
     * checks clean and reads as the guest, with its tables past the end and
     * no redundant directory, and libvmdk's vmdkinfo (a second reader) opens
     * it; a new run finishes it.
     */
    @Test
    void aVmdkStoppedBetweenRoundsIsAValidVmdk() throws IOException {
        byte[] source = scrambled("vmdk", "zeroed_grain=on", "2M", 7);
        byte[] guest = guestBytes(source, "vmdk");
        CrashSim sim = new CrashSim(Map.of(CrashChecker.IMAGE, source));
        Cancellation cancel = new Cancellation();
        int[] rounds = {0};
        InPlaceConverter.Progress progress = (phase, done, total) -> {
            if (phase.equals("move") && done > 0 && ++rounds[0] == 2) {
                cancel.request("SIGINT");
            }
        };
        assertThrows(Cancellation.CancelledException.class, () -> InPlaceConverter.convert(CrashChecker.file(sim),
                new InPlaceConverter.Request("vmdk", "raw", Map.of(), false), progress, cancel));
        byte[] state = sim.crashState(sim.log.size(), CrashSim.FileFate.NONE, true, 0).get(CrashChecker.IMAGE);
        assertFalse(java.util.Arrays.equals(source, state), "some grains moved");
        ByteBuffer header = ByteBuffer.wrap(state).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        assertEquals(0, header.getInt(8) & 2, "redundant directory flag cleared");
        assertEquals(0, header.getLong(48), "no redundant directory");
        assertTrue(header.getLong(56) * 512 >= source.length, "the directory lies past the old end");
        CrashChecker checker = new CrashChecker(Set.of("vmdk"), guest, dir);
        checker.leaksAllowed = Set.of("vmdk");
        checker.verifyImage(state, "cancelled", true);
        Path p = dir.resolve("stopped.vmdk");
        Files.write(p, state);
        Qemu.Result info = Qemu.run("vmdkinfo", p.toString());
        assertEquals(0, info.exitCode(), info.out() + info.err());
        assertTrue(info.out().contains("(" + guest.length + " bytes)"), info.out());

        CrashSim again = new CrashSim(Map.of(CrashChecker.IMAGE, state));
        InPlaceConverter.convert(CrashChecker.file(again), new InPlaceConverter.Request("vmdk", "raw", Map.of(),
                false), InPlaceConverter.Progress.NONE);
        assertArrayEquals(guest, again.crashState(again.log.size(), CrashSim.FileFate.NONE, true, 0)
                .get(CrashChecker.IMAGE));
    }

    @Test
    void notEnoughSpaceIsRefusedBeforeAnyWrite() throws IOException {
        byte[] source = scrambled("qcow2", "cluster_size=4k", "512k", 3);
        CrashSim sim = new CrashSim(Map.of(CrashChecker.IMAGE, source));
        ConversionPlan plan = InPlaceConverter.plan(CrashChecker.file(sim),
                new InPlaceConverter.Request("qcow2", "raw", Map.of(), false));
        assertTrue(plan.extraSpace() > plan.metadataBytes(), "the bound counts the spare area too");
        sim.usableSpace = plan.extraSpace() - 1;
        NotEnoughSpaceException e = assertThrows(NotEnoughSpaceException.class, () -> InPlaceConverter.convert(
                CrashChecker.file(sim), new InPlaceConverter.Request("qcow2", "raw", Map.of(), false),
                InPlaceConverter.Progress.NONE));
        assertTrue(e.getMessage().contains(io.diskmorph.image.Sizes.human(plan.extraSpace()))
                || e.getMessage().contains(Long.toString(plan.extraSpace())), e.getMessage());
        assertTrue(sim.log.isEmpty(), "nothing written: " + sim.log.size() + " operations");
        assertArrayEquals(source, sim.crashState(sim.log.size(), CrashSim.FileFate.ALL, true, 0)
                .get(CrashChecker.IMAGE));
    }

    /**
     * A qcow2 image whose clusters were written in random order (so the
     * homes form chains and cycles), with zero clusters, holes, a partial
     * last cluster, and data at guest offsets where the tables lie.
     */
    private byte[] scrambled(String format, String createOpts, String size, long seed) throws IOException {
        Path p = dir.resolve("src-" + seed + "." + format);
        Files.deleteIfExists(p);
        Qemu.create(p, format, size, createOpts);
        long bytes = io.diskmorph.image.Sizes.parse(size);
        long piece = 4096;
        List<Long> offsets = new ArrayList<>();
        for (long o = 0; o + piece <= bytes; o += piece) {
            if ((o / piece) % 5 != 3) { // every fifth piece stays a hole
                offsets.add(o);
            }
        }
        Collections.shuffle(offsets, new Random(seed));
        List<String> cmds = new ArrayList<>();
        for (long o : offsets) {
            cmds.add("write -P " + (1 + (o / piece) % 250) + " " + o + " " + piece);
        }
        cmds.add("write -P 0x5a " + (bytes - 512) + " 512"); // the last bytes
        cmds.add("write -z " + (bytes / 2) + " 16k");
        Qemu.io(p, format, cmds.toArray(String[]::new));
        return Files.readAllBytes(p);
    }

    private static byte[] guestBytes(byte[] image, String format) throws IOException {
        try (DiskImage img = Images.open(MemoryStorage.of("src", image), format, true)) {
            byte[] g = new byte[Math.toIntExact(img.virtualSize())];
            img.read(ByteBuffer.wrap(g), 0);
            return g;
        }
    }
}
