package io.diskmorph.api;

import io.diskmorph.convert.InPlaceSafetyTest;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The public API against qemu-img: every operation's result is what
 * qemu-img says of the same files, failures are the documented exception
 * types with the CLI's exit codes, and refused operations change nothing.
 */
class ApiTest {
    @TempDir
    Path dir;

    /** A 64 MiB qcow2 made by qemu-img with data at three places, one of them written as zeros. */
    private Path sample() {
        Path img = dir.resolve("disk.qcow2");
        Qemu.create(img, "qcow2", "64M");
        Qemu.io(img, "qcow2", "write -P 0x11 0 1M", "write -P 0x22 5M 64k", "write -z 9M 128k",
                "write -P 0x33 40M 3M");
        return img;
    }

    @Test
    void detailsAndMapAreQemuImgs() throws IOException {
        Path img = sample();
        var q = Qemu.img("info", "--output=json", img).ok().json();
        ImageDetails d = Diskmorph.info(img);
        assertEquals(q.get("format").asText(), d.format());
        assertEquals(q.get("virtual-size").asLong(), d.virtualSize());
        assertEquals(q.get("cluster-size").asLong(), d.clusterSize());
        assertEquals(q.get("format-specific").get("data").get("compat").asText(), d.formatSpecific().get("compat"));
        assertThrows(UnsupportedOperationException.class, () -> d.formatSpecific().put("compat", "x"));

        List<Qemu.MapLine> expected = Qemu.map(img, "qcow2");
        List<Qemu.MapLine> actual = new ArrayList<>();
        try (Image image = Diskmorph.open(img)) {
            ExtentCursor c = image.extents();
            while (c.hasNext()) {
                Extent e = c.next();
                actual.add(new Qemu.MapLine(e.start(), e.length(), e.depth(), e.present(), e.zero(), e.data(),
                        e.hostOffset()));
            }
            // a range: only the extents inside it, cut at its ends
            ExtentCursor part = image.extents(5 << 20, (5 << 20) + 4096);
            Extent only = part.next();
            assertEquals(5 << 20, only.start());
            assertEquals(4096, only.length());
            assertTrue(only.data());
            assertFalse(part.hasNext());
            assertThrows(InvalidRequestException.class, () -> image.extents(0, image.virtualSize() + 1));
        }
        assertEquals(expected, actual);
    }

    @Test
    void readsAndWritesGuestBytesAsQemuSeesThem() throws IOException {
        Path img = sample();
        try (Image image = Diskmorph.open(img, OpenOptions.readWrite().withFormat("qcow2"))) {
            ByteBuffer b = ByteBuffer.allocate(4096);
            image.read(b, 5 << 20);
            assertEquals(0x22, b.get(0));
            image.write(ByteBuffer.wrap(filled(8192, 0x5a)), 20 << 20);
            image.writeZeroes(40 << 20, 1 << 20);
            image.flush();
            assertThrows(InvalidRequestException.class,
                    () -> image.write(ByteBuffer.allocate(512), image.virtualSize() - 256));
        }
        Qemu.io(img, "qcow2", "read -P 0x5a 20M 8k", "read -P 0 40M 1M", "read -P 0x33 41M 2M");
        assertEquals(0, Qemu.check(img, "qcow2").exitCode());
        try (Image ro = Diskmorph.open(img)) {
            InvalidRequestException e = assertThrows(InvalidRequestException.class,
                    () -> ro.write(ByteBuffer.allocate(512), 0));
            assertEquals(64, e.exitCode());
        }
    }

    @Test
    void checkCountsAndRepairsAsQemuImg() throws IOException {
        Path img = sample();
        Phases checked = new Phases();
        CheckResult clean = Diskmorph.check(img, OpenOptions.readOnly(), Repair.NONE, checked);
        assertTrue(clean.isClean(), clean.toString());
        assertEquals(64 << 20, checked.lastTotal("tables"), "the tables phase covers the disk");
        assertEquals(checked.lastTotal("tables"), checked.lastDone("tables"));
        var q = Qemu.check(img, "qcow2").json();
        assertEquals(q.get("allocated-clusters").asLong(), clean.allocatedClusters());
        assertEquals(q.get("image-end-offset").asLong(), clean.imageEndOffset());

        // drop the L2 entry of guest cluster 0: its data cluster leaks (refcount 1, no reference)
        try (FileChannel ch = FileChannel.open(img, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            ByteBuffer h = ByteBuffer.allocate(8);
            ch.read(h, 40);
            long l1 = h.flip().getLong();
            ch.read(h.clear(), l1);
            long l2 = h.flip().getLong() & 0x00fffffffffffe00L;
            ch.write(ByteBuffer.allocate(8), l2);
        }
        Qemu.Result qemu = Qemu.check(img, "qcow2");
        CheckResult leaky = Diskmorph.check(img, "qcow2", Repair.NONE);
        assertEquals(qemu.exitCode(), leaky.exitCode());
        assertEquals(3, leaky.exitCode());
        assertEquals(qemu.json().get("leaks").asLong(), leaky.leaks());
        assertThrows(UnsupportedOperationException.class, () -> leaky.messages().add("x"));

        CheckResult fixed = Diskmorph.check(img, "qcow2", Repair.LEAKS);
        assertEquals(leaky.leaks(), fixed.leaksFixed());
        assertTrue(fixed.repaired());
        assertEquals(0, Qemu.check(img, "qcow2").exitCode());

        Path raw = dir.resolve("disk.raw");
        Files.write(raw, new byte[65536]);
        CheckResult none = Diskmorph.check(raw, "raw", Repair.NONE);
        assertFalse(none.supported());
        assertEquals(63, none.exitCode());
    }

    @Test
    void compareIsQemuImgCompare() throws IOException {
        Path img = sample();
        Path copy = dir.resolve("copy.qcow2");
        Qemu.img("convert", "-O", "qcow2", img, copy).ok();
        assertTrue(Diskmorph.compare(img, copy).identical());
        Qemu.io(copy, "qcow2", "write -P 0x77 30M 512");
        Qemu.Result q = Qemu.img("compare", img, copy);
        AtomicLong last = new AtomicLong(-1);
        CompareResult r;
        try (Image a = Diskmorph.open(img); Image b = Diskmorph.open(copy)) {
            r = Diskmorph.compare(a, b, false, (phase, done, total) -> {
                assertEquals("compare", phase);
                assertEquals(64 << 20, total);
                last.set(done);
            });
        }
        assertFalse(r.identical());
        assertEquals(30 << 20, r.firstDifference());
        assertEquals(q.out().strip(), r.message());
        assertEquals(q.exitCode(), r.exitCode());
        assertTrue(last.get() >= 30 << 20, "progress reached the difference: " + last.get());
    }

    @Test
    void createsAsQemuImgAndRefusesWithoutTouchingTheFile() throws IOException {
        Path img = dir.resolve("new.qcow2");
        ImageDetails d = Diskmorph.create(img, CreateRequest.of("qcow2", 2L << 30).withOption("cluster_size", "1M"));
        var q = Qemu.img("info", "--output=json", img).ok().json();
        assertEquals(2L << 30, q.get("virtual-size").asLong());
        assertEquals(1 << 20, q.get("cluster-size").asLong());
        assertEquals(d.clusterSize(), q.get("cluster-size").asLong());
        assertEquals(0, Qemu.check(img, "qcow2").exitCode());

        Path overlay = dir.resolve("overlay.qcow2");
        ImageDetails o = Diskmorph.create(overlay, CreateRequest.overlay("qcow2", "new.qcow2", "qcow2"));
        assertEquals(2L << 30, o.virtualSize());
        assertEquals("new.qcow2", o.backingFilename());

        byte[] before = Files.readAllBytes(img);
        InvalidRequestException bad = assertThrows(InvalidRequestException.class,
                () -> Diskmorph.create(img, CreateRequest.of("qcow2", 1 << 20).withOption("cluster_size", "3k")));
        assertEquals(64, bad.exitCode());
        assertFalse(bad.getMessage().contains("\n"));
        assertArrayEquals(before, Files.readAllBytes(img), "a refused create leaves the file as it was");
        assertThrows(InvalidRequestException.class, () -> Diskmorph.create(dir.resolve("x"),
                CreateRequest.of("nosuchformat", 1 << 20)));
        assertFalse(Files.exists(dir.resolve("x")));
    }

    @Test
    void copiesAsQemuImgWithProgressAndCancels() throws IOException {
        Path img = sample();
        Path target = dir.resolve("copy.vhdx");
        AtomicLong done = new AtomicLong();
        AtomicLong total = new AtomicLong();
        CopyResult r = Diskmorph.copy(img, target, CopyRequest.to("vhdx"), (phase, n, of) -> {
            assertEquals("copy", phase);
            done.set(n);
            total.set(of);
        }, null);
        assertEquals("vhdx", r.target().format());
        assertEquals("qcow2", r.sourceFormat());
        assertEquals(0, Qemu.compare(img, target));
        long mappedData = Qemu.map(img, "qcow2").stream().filter(l -> l.data() && !l.zero())
                .mapToLong(Qemu.MapLine::length).sum();
        assertEquals(mappedData, r.dataBytes(), "data bytes written = qemu-img map's data of the source");
        assertEquals(0, r.compressedBytes());
        assertEquals(total.get(), done.get());
        assertTrue(total.get() >= 4 << 20, "data bytes: " + total.get());

        Path big = dir.resolve("big.raw");
        try (FileChannel ch = FileChannel.open(big, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
            ByteBuffer chunk = ByteBuffer.wrap(filled(1 << 20, 0x42));
            for (int i = 0; i < 64; i++) {
                ch.write(chunk.clear(), (long) i << 20);
            }
        }
        Cancellation cancel = new Cancellation();
        Path stopped = dir.resolve("stopped.qcow2");
        ConversionCancelledException e = assertThrows(ConversionCancelledException.class,
                () -> Diskmorph.copy(big, stopped, CopyRequest.to("qcow2").withSourceFormat("raw"),
                        (phase, n, of) -> {
                            if (n > 0) {
                                cancel.cancel("test");
                            }
                        }, cancel));
        assertEquals(130, e.exitCode());
        assertNull(e.validAs());
        try (Stream<Path> files = Files.list(dir)) {
            assertEquals(List.of(), files.filter(p -> p.getFileName().toString().startsWith("stopped")).toList(),
                    "no target and no partial file left");
        }
    }

    @Test
    void measureIsQemuImgMeasure() throws IOException {
        Path img = sample();
        var q = Qemu.img("measure", "--output=json", "-O", "qcow2", img).ok().json();
        Phases walked = new Phases();
        MeasureResult m = Diskmorph.measure(img, "qcow2", "qcow2", Map.of(), true, walked);
        assertEquals(64 << 20, walked.lastDone("measure"));
        assertTrue(walked.seen.contains("check"), "qcow2 to qcow2 in place: checked, nothing to change: "
                + walked.seen);
        assertEquals(0, m.inPlace().orElseThrow().movedBytes());
        assertEquals(q.get("required").asLong(), m.required());
        assertEquals(q.get("fully-allocated").asLong(), m.fullyAllocated());
        assertTrue(m.inPlace().isPresent());
        MeasureResult empty = Diskmorph.measure(1L << 40, "qcow2", Map.of());
        var qe = Qemu.img("measure", "--output=json", "-O", "qcow2", "--size", "1T").ok().json();
        assertEquals(qe.get("required").asLong(), empty.required());
        assertTrue(empty.inPlace().isEmpty());
    }

    @Test
    void plansThenExecutesInPlaceAndRollsBack() throws IOException {
        Path img = sample();
        Path reference = dir.resolve("reference.raw");
        Qemu.toRaw(img, "qcow2", reference);
        byte[] original = Files.readAllBytes(img);

        InPlacePlan plan = Diskmorph.plan(img, InPlaceRequest.to("qed").withKeepRollback(true));
        assertArrayEquals(original, Files.readAllBytes(img), "planning writes nothing");
        assertEquals("qcow2", plan.sourceFormat());
        assertEquals("qed", plan.targetFormat());
        assertFalse(plan.nothingToChange());
        assertTrue(plan.enoughSpace());
        assertEquals(64 << 20, plan.virtualSize());
        assertEquals(original.length, plan.originalLength());
        assertThrows(UnsupportedOperationException.class, () -> plan.notes().add("x"));

        List<String> phases = new ArrayList<>();
        InPlaceResult r = Diskmorph.execute(plan, (phase, n, of) -> {
            if (phases.isEmpty() || !phases.getLast().equals(phase)) {
                phases.add(phase);
            }
        }, new Cancellation());
        assertTrue(phases.size() >= 3, "phases: " + phases);
        assertEquals(plan.keptBytes(), r.plan().keptBytes());
        assertEquals(plan.movedBytes(), r.plan().movedBytes());
        assertEquals("qed", Qemu.img("info", "--output=json", img).ok().json().get("format").asText());
        assertEquals(0, Qemu.check(img, "qed").exitCode());
        assertEquals(0, Qemu.compare(img, reference));
        assertEquals(RecoveryOutcome.NOTHING_TO_DO, Diskmorph.recover(img));

        // a copy of the image with its rollback record is another file: its record does not belong to it
        Path twin = dir.resolve("twin.qcow2");
        Files.copy(img, twin, java.nio.file.StandardCopyOption.COPY_ATTRIBUTES); // as cp -p: same content, time
        Files.copy(dir.resolve("disk.qcow2.dmrollback"), dir.resolve("twin.qcow2.dmrollback"));
        byte[] twinBytes = Files.readAllBytes(twin);
        JournalMismatchException foreign = assertThrows(JournalMismatchException.class,
                () -> Diskmorph.rollback(twin));
        assertEquals(70, foreign.exitCode());
        assertArrayEquals(twinBytes, Files.readAllBytes(twin));
        Diskmorph.rollback(twin, true, ProgressListener.NONE); // --accept-moved: identified by its content
        assertArrayEquals(original, Files.readAllBytes(twin));

        Phases rolled = new Phases();
        Diskmorph.rollback(img, false, rolled);
        assertArrayEquals(original, Files.readAllBytes(img), "rollback restores the original byte for byte");
        assertTrue(rolled.seen.contains("switch"), rolled.seen.toString());
        DiskmorphException none = assertThrows(DiskmorphException.class, () -> Diskmorph.rollback(img));
        assertEquals(1, none.exitCode());
        assertTrue(none.getMessage().contains("no rollback record"), none.getMessage());
        assertArrayEquals(original, Files.readAllBytes(img));
    }

    @Test
    void aStalePlanIsRefused() throws IOException {
        Path img = sample();
        InPlacePlan plan = Diskmorph.plan(img, InPlaceRequest.to("qed"));
        Qemu.io(img, "qcow2", "write -P 0x44 50M 2M");
        byte[] changed = Files.readAllBytes(img);
        InvalidRequestException e = assertThrows(InvalidRequestException.class,
                () -> Diskmorph.execute(plan, ProgressListener.NONE, null));
        assertTrue(e.getMessage().contains("plan again"), e.getMessage());
        assertArrayEquals(changed, Files.readAllBytes(img));
    }

    @Test
    void aCancelledInPlaceConversionLeavesTheOriginal() throws IOException {
        Path img = sample();
        byte[] original = Files.readAllBytes(img);
        Cancellation cancel = new Cancellation();
        ConversionCancelledException e = assertThrows(ConversionCancelledException.class,
                () -> Diskmorph.convertInPlace(img, InPlaceRequest.to("qed"), (phase, n, of) -> {
                    if (phase.equals("write") || phase.equals("journal")) {
                        cancel.cancel("test");
                    }
                }, cancel));
        assertEquals(130, e.exitCode());
        assertEquals(0, Qemu.check(img, "qcow2").exitCode());
        assertArrayEquals(original, Files.readAllBytes(img), "the original bytes are back");
        try (Stream<Path> files = Files.list(dir)) {
            assertEquals(List.of("disk.qcow2"), files.map(p -> p.getFileName().toString()).toList());
        }
    }

    @Test
    void anInterruptedConversionIsRefusedUntilRecovered() throws IOException {
        Path img = sample();
        byte[] original = Files.readAllBytes(img);
        InPlaceSafetyTest.convertAndCut(img, "qed", 3); // a power cut at the conversion's fourth write
        InterruptedConversionException pending = assertThrows(InterruptedConversionException.class,
                () -> Diskmorph.open(img));
        assertEquals(69, pending.exitCode());
        assertTrue(pending.getMessage().contains("recover"), pending.getMessage());
        assertThrows(InterruptedConversionException.class, () -> Diskmorph.plan(img, InPlaceRequest.to("qed")));
        Phases recovered = new Phases();
        assertEquals(RecoveryOutcome.RESTORED_SOURCE, Diskmorph.recover(img, false, recovered));
        assertTrue(recovered.seen.contains("restore"), recovered.seen.toString());
        assertEquals(recovered.lastTotal("restore"), recovered.lastDone("restore"));
        assertArrayEquals(original, Files.readAllBytes(img));
        assertEquals(RecoveryOutcome.NOTHING_TO_DO, Diskmorph.recover(img));
        assertEquals("qcow2", Diskmorph.info(img).format());
    }

    @Test
    void anInterruptOfTheCallerCancelsAndLeavesTheOriginal() throws IOException {
        Path img = sample();
        byte[] original = Files.readAllBytes(img);
        Thread caller = Thread.currentThread();
        ConversionCancelledException e = assertThrows(ConversionCancelledException.class,
                () -> Diskmorph.convertInPlace(img, InPlaceRequest.to("qed"), (phase, n, of) -> {
                    if (phase.equals("write")) {
                        caller.interrupt(); // as Future.cancel(true) or a pool's shutdownNow would
                    }
                }, null));
        assertTrue(Thread.interrupted(), "the caller's interrupt status is set again");
        assertTrue(e.getMessage().contains("the original image is back"), e.getMessage());
        assertArrayEquals(original, Files.readAllBytes(img));
        assertEquals(List.of("disk.qcow2"), names());
        assertEquals(0, Qemu.check(img, "qcow2").exitCode());
    }

    @Test
    void aThrowingListenerCancelsBeforeTheSwitchAndIsIgnoredAfterIt() throws IOException {
        Path img = sample();
        byte[] original = Files.readAllBytes(img);
        IllegalStateException bug = new IllegalStateException("listener bug");
        ConversionCancelledException e = assertThrows(ConversionCancelledException.class,
                () -> Diskmorph.convertInPlace(img, InPlaceRequest.to("qed"), (phase, n, of) -> {
                    if (phase.equals("write")) {
                        throw bug;
                    }
                }, null));
        assertEquals(bug, e.getCause());
        assertArrayEquals(original, Files.readAllBytes(img));
        assertEquals(List.of("disk.qcow2"), names());

        // after the commit point the conversion finishes whatever the listener does
        InPlaceResult r = Diskmorph.convertInPlace(img, InPlaceRequest.to("qed"), (phase, n, of) -> {
            if (phase.equals("cleanup")) {
                throw bug;
            }
        }, null);
        assertEquals("qed", r.plan().targetFormat());
        assertEquals(List.of("disk.qcow2"), names());
        assertEquals(0, Qemu.check(img, "qed").exitCode());
    }

    @Test
    void aPlanIsStaleWhenTheLayoutChangedEvenWithItsTimeReset() throws IOException {
        Path img = sample();
        InPlacePlan plan = Diskmorph.plan(img, InPlaceRequest.to("qed"));
        Qemu.io(img, "qcow2", "discard 5M 64k"); // frees a data cluster: the file keeps its length
        assertEquals(plan.originalLength(), Files.size(img));
        Files.setLastModifiedTime(img, java.nio.file.attribute.FileTime.from(plan.lastModified()));
        byte[] changed = Files.readAllBytes(img);
        InvalidRequestException e = assertThrows(InvalidRequestException.class,
                () -> Diskmorph.execute(plan, ProgressListener.NONE, null));
        assertTrue(e.getMessage().contains("changed since the plan was made") && !e.getMessage().contains("modified"),
                "refused by planning again, not by the time: " + e.getMessage());
        assertArrayEquals(changed, Files.readAllBytes(img));
    }

    @Test
    void twoCopiesToOneTargetInOneProcessDoNotMeet() throws IOException {
        Path img = sample();
        Path target = dir.resolve("out.qcow2");
        java.util.concurrent.atomic.AtomicBoolean nested = new java.util.concurrent.atomic.AtomicBoolean();
        CopyResult outer = Diskmorph.copy(img, target, CopyRequest.to("qcow2"), (phase, n, of) -> {
            if (n > 0 && nested.compareAndSet(false, true)) {
                try { // a second copy to the same name while the first is half written
                    Diskmorph.copy(img, target, CopyRequest.to("qcow2"), ProgressListener.NONE, null);
                } catch (DiskmorphException x) {
                    throw new AssertionError(x);
                }
            }
        }, null);
        assertTrue(nested.get());
        assertEquals("qcow2", outer.target().format());
        assertEquals(0, Qemu.compare(img, target));
        assertEquals(List.of("disk.qcow2", "out.qcow2"), names());
    }

    @Test
    void resultsNameTheFormatWrittenNotAProbedOne() throws IOException {
        Path vhd = dir.resolve("fixed.vhd");
        ImageDetails made = Diskmorph.create(vhd, CreateRequest.of("vpc", 16 << 20).withOption("subformat", "fixed"));
        assertEquals("vpc", made.format()); // a fixed VHD probes as raw
        CopyResult copied = Diskmorph.copy(sample(), dir.resolve("copy.vhd"),
                CopyRequest.to("vpc").withOption("subformat", "fixed"), ProgressListener.NONE, null);
        assertEquals("vpc", copied.target().format());
    }

    @Test
    void requestsTheCommandRefusesAreRefusedAlike() throws IOException {
        Path img = sample();
        InvalidRequestException sparse = assertThrows(InvalidRequestException.class,
                () -> Diskmorph.copy(img, dir.resolve("x.qcow2"), CopyRequest.to("qcow2").withMinSparse(1000),
                        ProgressListener.NONE, null));
        assertTrue(sparse.getMessage().startsWith("minSparse must be a multiple of 512"), sparse.getMessage());
        assertThrows(InvalidRequestException.class, () -> Diskmorph.copy(img, dir.resolve("x.qcow2"),
                CopyRequest.to("qcow2").withParallel(0), ProgressListener.NONE, null));

        Path overlay = dir.resolve("overlay.qcow2");
        DiskmorphException missing = assertThrows(DiskmorphException.class, () -> Diskmorph.create(overlay,
                CreateRequest.of("qcow2", 1 << 20).withOption("backing_file", "nothing.qcow2")
                        .withOption("backing_fmt", "qcow2")));
        assertEquals(1, missing.exitCode());
        assertTrue(missing.getMessage().contains("nothing.qcow2"), missing.getMessage());

        DiskmorphException huge = assertThrows(DiskmorphException.class,
                () -> Diskmorph.create(dir.resolve("huge.qcow2"), CreateRequest.of("qcow2", Long.MAX_VALUE)));
        assertFalse(huge.getMessage().contains("\n"));
        assertEquals(List.of("disk.qcow2"), names(), "nothing made: " + huge.getMessage());
    }

    private List<String> names() throws IOException {
        try (Stream<Path> files = Files.list(dir)) {
            return files.map(p -> p.getFileName().toString()).sorted().toList();
        }
    }

    @Test
    void failuresAreTypedWithTheCliExitCodes() throws IOException {
        DiskmorphException missing = assertThrows(DiskmorphException.class,
                () -> Diskmorph.open(dir.resolve("nothing.qcow2")));
        assertEquals(1, missing.exitCode());
        assertTrue(missing.getMessage().contains("nothing.qcow2"), missing.getMessage());

        Path img = sample();
        try (Image writer = Diskmorph.open(img, OpenOptions.readWrite())) {
            ImageInUseException busy = assertThrows(ImageInUseException.class,
                    () -> Diskmorph.convertInPlace(img, InPlaceRequest.to("qed"), ProgressListener.NONE, null));
            assertEquals(67, busy.exitCode());
            assertEquals("qcow2", writer.format());
        }

        Qemu.img("snapshot", "-c", "s1", img).ok();
        byte[] withSnapshot = Files.readAllBytes(img);
        UnsupportedImageException snap = assertThrows(UnsupportedImageException.class,
                () -> Diskmorph.plan(img, InPlaceRequest.to("qed")));
        assertEquals(66, snap.exitCode());
        assertTrue(snap.getMessage().contains("snapshot"), snap.getMessage());
        assertArrayEquals(withSnapshot, Files.readAllBytes(img));
        assertEquals(1, Diskmorph.info(img).snapshots().size());

        Path corrupt = dir.resolve("corrupt.qcow2");
        Qemu.create(corrupt, "qcow2", "1M");
        try (FileChannel ch = FileChannel.open(corrupt, StandardOpenOption.WRITE)) {
            ch.write(ByteBuffer.allocate(8).putLong(0, 1L << 50), 40); // L1 table far past the end of the file
        }
        CorruptImageException bad = assertThrows(CorruptImageException.class, () -> {
            try (Image i = Diskmorph.open(corrupt)) {
                i.read(ByteBuffer.allocate(512), 0);
            }
        });
        assertEquals(65, bad.exitCode());
    }

    @Test
    void opensAnImageFromTheCallersStorage() throws IOException {
        Path img = sample();
        byte[] bytes = Files.readAllBytes(img);
        try (Image image = Diskmorph.open(new BytesStorage(bytes), OpenOptions.readOnly())) {
            assertEquals("qcow2", image.format());
            ByteBuffer b = ByteBuffer.allocate(1 << 20);
            image.read(b, 40 << 20);
            assertArrayEquals(filled(1 << 20, 0x33), b.array());
        }
    }

    @Test
    void versionAndFormats() {
        assertTrue(Diskmorph.version().matches("\\d+\\.\\d+\\.\\d+.*"), Diskmorph.version());
        assertTrue(Diskmorph.formats().containsAll(List.of("raw", "qcow2", "qed", "vmdk", "vhdx", "vpc", "vdi",
                "qcow", "parallels")), Diskmorph.formats().toString());
    }

    /** Records the phases a listener was told, and each phase's last figures. */
    private static final class Phases implements ProgressListener {
        final List<String> seen = new ArrayList<>();
        final Map<String, long[]> last = new java.util.HashMap<>();

        @Override
        public void progress(String phase, long done, long total) {
            if (seen.isEmpty() || !seen.getLast().equals(phase)) {
                seen.add(phase);
            }
            long[] before = last.get(phase);
            assertTrue(before == null || done >= before[0] || total != before[1], phase + " went back");
            last.put(phase, new long[] {done, total});
        }

        long lastDone(String phase) {
            assertTrue(last.containsKey(phase), "no phase " + phase + " in " + seen);
            return last.get(phase)[0];
        }

        long lastTotal(String phase) {
            assertTrue(last.containsKey(phase), "no phase " + phase + " in " + seen);
            return last.get(phase)[1];
        }
    }

    private static byte[] filled(int n, int value) {
        byte[] b = new byte[n];
        Arrays.fill(b, (byte) value);
        return b;
    }

    /** A caller's storage: a read-only byte array. */
    private record BytesStorage(byte[] bytes) implements ImageStorage {
        @Override
        public void read(ByteBuffer dst, long position) {
            while (dst.hasRemaining()) {
                dst.put(position < bytes.length ? bytes[(int) position] : 0);
                position++;
            }
        }

        @Override
        public void write(ByteBuffer src, long position) throws IOException {
            throw new IOException("read-only");
        }

        @Override
        public void sync() {
        }

        @Override
        public long size() {
            return bytes.length;
        }

        @Override
        public void truncate(long size) throws IOException {
            throw new IOException("read-only");
        }

        @Override
        public boolean isReadOnly() {
            return true;
        }

        @Override
        public String name() {
            return "bytes";
        }

        @Override
        public void close() {
        }
    }
}
