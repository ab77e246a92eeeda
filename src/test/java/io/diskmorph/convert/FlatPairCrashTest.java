package io.diskmorph.convert;

import io.diskmorph.image.Images;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Map;
import java.util.Random;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Crash states of the descriptor + flat data file switch ({@link
 * FlatPairSwitch}): every prefix of the logged file and directory
 * operations (renames, hard links, directory syncs included), with unsynced
 * writes dropped, kept, reordered, torn or randomly kept, and unsynced
 * directory changes lost or kept. After {@link Recovery#recover} (itself
 * crashed at every step and run again) the directory must hold exactly the
 * pair (descriptor and data file, byte for byte) or the raw file at the
 * descriptor's path (with its rollback record when one was asked for), and
 * nothing else. Conversion, and rollback after a conversion kept with
 * --keep-rollback.
 */
class FlatPairCrashTest {
    private static final String DESC = "d.vmdk";
    private static final String DATA = "d-flat.vmdk";
    private static final String JOURNAL = DESC + Images.JOURNAL_SUFFIX;
    private static final String RECORD = DESC + Images.ROLLBACK_SUFFIX;

    private final byte[] descriptor = ("# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\n"
            + "createType=\"monolithicFlat\"\nRW 128 FLAT \"" + DATA + "\" 0\n").getBytes(StandardCharsets.UTF_8);
    private byte[] data = new byte[64 << 10];
    /** When set: the raw side of a state is this format (the pair converted to qcow2), judged by content. */
    private String convertedFormat;
    private final Set<String> seen = new HashSet<>();
    private int states;
    private int recoverCrashStates;
    private final java.util.EnumMap<Recovery.Outcome, Integer> outcomes = new java.util.EnumMap<>(Recovery.Outcome.class);

    FlatPairCrashTest() {
        new Random(7).nextBytes(data);
    }

    private FlatPairSwitch.Spec join(boolean keep) {
        return new FlatPairSwitch.Spec(FlatPairSwitch.Direction.JOIN, DATA, descriptor, data.length, "vmdk", "raw",
                keep);
    }

    @ParameterizedTest(name = "keep rollback {0}")
    @ValueSource(booleans = {false, true})
    void everyCrashStateOfTheConversionRecovers(boolean keep) throws IOException {
        CrashSim sim = new CrashSim(Map.of(DESC, descriptor, DATA, data));
        FlatPairSwitch.execute(sim.dir(), DESC, join(keep), Cancellation.NONE);
        assertEquals(keep ? Set.of(DESC, RECORD) : Set.of(DESC), names(sim));
        assertTrue(sim.log.stream().anyMatch(o -> o instanceof CrashSim.Rename), "the switch is a rename");
        recordWithRaw = keep;
        checkAll(sim, keep);
        assertTrue(states >= 5, "distinct crash states checked: " + states);
        assertTrue(recoverCrashStates > 0);
        // every kind of state was met: untouched, torn journal, before and after the rename
        for (Recovery.Outcome o : new Recovery.Outcome[]{Recovery.Outcome.NOTHING_TO_DO,
                Recovery.Outcome.DISCARDED_TORN_JOURNAL, Recovery.Outcome.RESTORED_SOURCE,
                Recovery.Outcome.COMPLETED_TARGET}) {
            assertTrue(outcomes.getOrDefault(o, 0) > 0, o + " in " + outcomes);
        }
    }

    @Test
    void everyCrashStateOfTheRollbackRecovers() throws IOException {
        CrashSim converted = new CrashSim(Map.of(DESC, descriptor, DATA, data));
        FlatPairSwitch.execute(converted.dir(), DESC, join(true), Cancellation.NONE);
        Map<String, byte[]> after = converted.crashState(converted.log.size(), CrashSim.FileFate.NONE, false, 0);
        CrashSim sim = new CrashSim(after);
        try (ConversionFile f = new ConversionFile(sim.file(DESC), sim.dir(), DESC, null, null)) {
            Recovery.rollback(f);
        }
        assertEquals(Set.of(DESC, DATA), names(sim));
        assertTrue(sim.log.stream().anyMatch(o -> o instanceof CrashSim.Link), "the raw file is linked back");
        recordWithRaw = true;
        checkAll(sim, true);
        assertTrue(outcomes.getOrDefault(Recovery.Outcome.ROLLED_BACK, 0) > 0, "interrupted rollbacks finished: "
                + outcomes);
        Map<String, byte[]> end = sim.crashState(sim.log.size(), CrashSim.FileFate.NONE, false, 0);
        assertArrayEquals(descriptor, end.get(DESC));
        assertArrayEquals(data, end.get(DATA));
    }

    /** A cancel request before the rename: the journal goes, the pair is untouched. */
    @Test
    void cancelBeforeTheRenameLeavesThePair() throws IOException {
        CrashSim sim = new CrashSim(Map.of(DESC, descriptor, DATA, data));
        Cancellation cancel = new Cancellation();
        cancel.request("test");
        assertThrows(Cancellation.CancelledException.class,
                () -> FlatPairSwitch.execute(sim.dir(), DESC, join(true), cancel));
        assertEquals(Set.of(DESC, DATA), names(sim));
    }

    /**
     * A damaged journal (bit flips anywhere in it, before and after the
     * rename): recover never fails with an internal error and leaves the
     * pair or the raw file, never anything else.
     */
    @Test
    void damagedJournalsRecoverToAValidState() throws IOException {
        CrashSim converted = new CrashSim(Map.of(DESC, descriptor, DATA, data));
        FlatPairSwitch.execute(converted.dir(), DESC, join(false), Cancellation.NONE);
        int renameAt = -1;
        for (int i = 0; i < converted.log.size(); i++) {
            if (converted.log.get(i) instanceof CrashSim.Rename) {
                renameAt = i;
            }
        }
        Random rnd = new Random(5);
        int damaged = 0;
        for (int prefix : new int[]{renameAt, renameAt + 2}) { // journal durable, rename not yet / done
            Map<String, byte[]> state = converted.crashState(prefix, CrashSim.FileFate.ALL, false, 0);
            byte[] journal = state.get(JOURNAL);
            assertNotNull(journal, "a state with the journal: " + state.keySet());
            for (int k = 0; k < 150; k++) {
                byte[] bad = journal.clone();
                bad[rnd.nextInt(bad.length)] ^= (byte) (1 << rnd.nextInt(8));
                Map<String, byte[]> s = new HashMap<>(state);
                s.put(JOURNAL, bad);
                CrashSim sim = new CrashSim(s);
                try (ConversionFile f = new ConversionFile(sim.file(DESC), sim.dir(), DESC, null, null)) {
                    Recovery.recover(f);
                } catch (io.diskmorph.image.ImageException e) {
                    continue; // refused in one line, the journal kept
                }
                judge(sim.crashState(sim.log.size(), CrashSim.FileFate.NONE, false, 0));
                damaged++;
            }
        }
        assertTrue(damaged > 100, "recovered damaged journals: " + damaged);
    }

    /** A journal whose descriptor is not what the path holds, with the data file present: refused, kept. */
    @Test
    void aForeignJournalIsRefused() throws IOException {
        CrashSim converted = new CrashSim(Map.of(DESC, descriptor, DATA, data));
        FlatPairSwitch.execute(converted.dir(), DESC, join(true), Cancellation.NONE);
        Map<String, byte[]> after = converted.crashState(converted.log.size(), CrashSim.FileFate.NONE, false, 0);
        Map<String, byte[]> other = new HashMap<>();
        other.put(DESC, "something else".getBytes(StandardCharsets.UTF_8));
        other.put(DATA, data);
        other.put(JOURNAL, after.get(RECORD));
        CrashSim sim = new CrashSim(other);
        try (ConversionFile f = new ConversionFile(sim.file(DESC), sim.dir(), DESC, null, null)) {
            assertThrows(io.diskmorph.image.JournalMismatchException.class, () -> Recovery.recover(f));
        }
        assertTrue(sim.log.isEmpty(), "nothing written");
    }

    /** Where a rollback record belongs when the state is raw / the pair. */
    private boolean recordWithRaw;
    private boolean recordWithPair;

    private void checkAll(CrashSim sim, boolean keep) throws IOException {
        for (int prefix = 0; prefix <= sim.log.size(); prefix++) {
            for (CrashSim.FileFate fate : CrashSim.FileFate.values()) {
                for (boolean dirOps : new boolean[]{false, true}) {
                    Map<String, byte[]> state = sim.crashState(prefix, fate, dirOps, prefix * 31L + fate.ordinal());
                    if (seen.add(CrashSim.fingerprint(state))) {
                        states++;
                        recoverAndJudge(state, keep, true);
                    }
                }
            }
        }
    }

    /** Recovers a crash state and checks the outcome; with {@code crashRecover} also every crash of the recover. */
    private void recoverAndJudge(Map<String, byte[]> state, boolean keep, boolean crashRecover) throws IOException {
        CrashSim sim = new CrashSim(state);
        assertTrue(state.containsKey(DESC), "the descriptor's path always names a file: " + state.keySet());
        try (ConversionFile f = new ConversionFile(sim.file(DESC), sim.dir(), DESC, null, null)) {
            Recovery.Outcome o = Recovery.recover(f);
            if (crashRecover) {
                outcomes.merge(o, 1, Integer::sum);
            }
            Recovery.Outcome again = Recovery.recover(f);
            assertEquals(Recovery.Outcome.NOTHING_TO_DO, again, "recover is done after one run");
        }
        judge(sim.crashState(sim.log.size(), CrashSim.FileFate.NONE, false, 0));
        if (crashRecover) {
            for (int prefix = 0; prefix < sim.log.size(); prefix++) {
                for (boolean dirOps : new boolean[]{false, true}) {
                    for (CrashSim.FileFate fate : new CrashSim.FileFate[]{CrashSim.FileFate.NONE,
                            CrashSim.FileFate.TORN_LAST}) {
                        recoverCrashStates++;
                        recoverAndJudge(sim.crashState(prefix, fate, dirOps, prefix), keep, false);
                    }
                }
            }
        }
    }

    /** The pair, or the raw file, each with its record where one belongs: nothing else, no byte changed. */
    private void judge(Map<String, byte[]> s) {
        String what = s.keySet().toString();
        assertFalse(s.containsKey(JOURNAL) || s.containsKey(DESC + FlatPairSwitch.TEMP_SUFFIX), what);
        if (convertedFormat != null && !s.containsKey(DATA)) {
            assertEquals(recordWithRaw ? Set.of(DESC, RECORD, DATA + Images.ROLLBACK_SUFFIX) : Set.of(DESC),
                    s.keySet(), "the converted extent (and both records when kept): " + what);
            try (io.diskmorph.image.DiskImage img = Images.open(io.diskmorph.storage.MemoryStorage.sparseOf(DESC,
                    s.get(DESC)), convertedFormat, true)) {
                assertEquals(data.length, img.virtualSize());
                java.nio.ByteBuffer guest = java.nio.ByteBuffer.allocate(data.length);
                img.read(guest, 0);
                assertArrayEquals(data, guest.array(), "the guest content");
                io.diskmorph.image.CheckReport r = img.check(io.diskmorph.image.RepairMode.NONE);
                assertTrue(r.corruptions == 0 && r.failure == null, "check clean");
            } catch (IOException e) {
                throw new AssertionError(what + ": " + e, e);
            }
            return;
        }
        if (s.containsKey(DATA)) {
            assertEquals(recordWithPair ? Set.of(DESC, DATA, RECORD) : Set.of(DESC, DATA), s.keySet(), what);
            assertArrayEquals(descriptor, s.get(DESC), "the descriptor, byte for byte");
            assertArrayEquals(data, s.get(DATA), "the data file, byte for byte");
        } else {
            assertTrue(Arrays.equals(data, s.get(DESC)), "the raw image at the descriptor's path: " + what);
            assertEquals(recordWithRaw ? Set.of(DESC, RECORD) : Set.of(DESC), s.keySet(), what);
        }
    }

    /**
     * The pair to qcow2: the data file converted in place under its own
     * journal and record, then renamed; every crash state recovers to the
     * untouched pair or to the qcow2 image alone with the same content.
     */
    @ParameterizedTest(name = "keep rollback {0}")
    @ValueSource(booleans = {false, true})
    void everyCrashStateOfThePairToQcow2Recovers(boolean keep) throws IOException {
        CrashSim sim = pairToQcow2(keep);
        assertEquals(keep ? Set.of(DESC, RECORD, DATA + Images.ROLLBACK_SUFFIX) : Set.of(DESC), names(sim));
        recordWithRaw = keep;
        checkAll(sim, keep);
        for (Recovery.Outcome o : new Recovery.Outcome[]{Recovery.Outcome.NOTHING_TO_DO,
                Recovery.Outcome.DISCARDED_TORN_JOURNAL, Recovery.Outcome.RESTORED_SOURCE,
                Recovery.Outcome.COMPLETED_TARGET}) {
            assertTrue(outcomes.getOrDefault(o, 0) > 0, o + " in " + outcomes);
        }
    }

    /** The rollback of pair -> qcow2: link back, the extent's own rollback, the descriptor back. */
    @Test
    void everyCrashStateOfThePairToQcow2RollbackRecovers() throws IOException {
        CrashSim converted = pairToQcow2(true);
        CrashSim sim = new CrashSim(converted.crashState(converted.log.size(), CrashSim.FileFate.NONE, false, 0));
        try (ConversionFile f = new ConversionFile(sim.file(DESC), sim.dir(), DESC, null, null)) {
            Recovery.rollback(f);
        }
        Map<String, byte[]> end = sim.crashState(sim.log.size(), CrashSim.FileFate.NONE, false, 0);
        assertEquals(Set.of(DESC, DATA), end.keySet());
        assertArrayEquals(descriptor, end.get(DESC));
        assertArrayEquals(data, end.get(DATA), "the extent byte for byte");
        recordWithRaw = true;
        checkAll(sim, true);
        assertTrue(outcomes.getOrDefault(Recovery.Outcome.ROLLED_BACK, 0) > 0, "interrupted rollbacks finished: "
                + outcomes);
    }

    private CrashSim pairToQcow2(boolean keep) throws IOException {
        data = new byte[320 << 10];
        Random rnd = new Random(11);
        for (int off : new int[]{0, 100 << 10, 256 << 10}) {
            byte[] chunk = new byte[40 << 10];
            rnd.nextBytes(chunk);
            System.arraycopy(chunk, 0, data, off, chunk.length);
        }
        CrashSim sim = new CrashSim(Map.of(DESC, descriptor, DATA, data));
        InPlaceConverter.Request inner = new InPlaceConverter.Request("raw", "qcow2",
                Map.of("cluster_size", "64k"), true);
        ConversionPlan plan;
        try (ConversionFile f = new ConversionFile(sim.file(DATA), sim.dir(), DATA, null, null)) {
            plan = InPlaceConverter.plan(f, inner);
        }
        FlatPairSwitch.Spec spec = new FlatPairSwitch.Spec(FlatPairSwitch.Direction.JOIN, DATA, descriptor,
                data.length, "vmdk", "qcow2", keep);
        FlatPairSwitch.executeJoinConverting(sim.dir(), DESC, new FlatPairSwitch.Planned(spec, plan, inner),
                InPlaceConverter.Progress.NONE, Cancellation.NONE, FlatPairSwitch.DataFileOpener.DEFAULT);
        convertedFormat = "qcow2";
        return sim;
    }

    private FlatPairSwitch.Spec split(boolean keep) {
        return new FlatPairSwitch.Spec(FlatPairSwitch.Direction.SPLIT, DATA, descriptor, data.length, "raw",
                "vmdk", keep);
    }

    /** Raw to the pair (VMDK monolithicFlat in place): hard link, temporary descriptor, rename. */
    @ParameterizedTest(name = "keep rollback {0}")
    @ValueSource(booleans = {false, true})
    void everyCrashStateOfTheSplitRecovers(boolean keep) throws IOException {
        CrashSim sim = new CrashSim(Map.of(DESC, data));
        FlatPairSwitch.execute(sim.dir(), DESC, split(keep), Cancellation.NONE);
        assertEquals(keep ? Set.of(DESC, DATA, RECORD) : Set.of(DESC, DATA), names(sim));
        recordWithPair = keep;
        checkAll(sim, keep);
        for (Recovery.Outcome o : new Recovery.Outcome[]{Recovery.Outcome.NOTHING_TO_DO,
                Recovery.Outcome.DISCARDED_TORN_JOURNAL, Recovery.Outcome.RESTORED_SOURCE,
                Recovery.Outcome.COMPLETED_TARGET}) {
            assertTrue(outcomes.getOrDefault(o, 0) > 0, o + " in " + outcomes);
        }
    }

    @Test
    void everyCrashStateOfTheSplitsRollbackRecovers() throws IOException {
        CrashSim converted = new CrashSim(Map.of(DESC, data));
        FlatPairSwitch.execute(converted.dir(), DESC, split(true), Cancellation.NONE);
        CrashSim sim = new CrashSim(converted.crashState(converted.log.size(), CrashSim.FileFate.NONE, false, 0));
        try (ConversionFile f = new ConversionFile(sim.file(DESC), sim.dir(), DESC, null, null)) {
            Recovery.rollback(f);
        }
        assertEquals(Set.of(DESC), names(sim));
        recordWithPair = true;
        checkAll(sim, true);
        assertTrue(outcomes.getOrDefault(Recovery.Outcome.ROLLED_BACK, 0) > 0, "interrupted rollbacks finished: "
                + outcomes);
    }

    private static Set<String> names(CrashSim sim) {
        return sim.crashState(sim.log.size(), CrashSim.FileFate.NONE, false, 0).keySet().stream()
                .filter(n -> !n.isEmpty()).collect(java.util.stream.Collectors.toSet());
    }
}
