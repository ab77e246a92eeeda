package io.diskmorph.fuzz;

import io.diskmorph.convert.ConversionFile;
import io.diskmorph.convert.ConversionPlan;
import io.diskmorph.convert.InPlaceConverter;
import io.diskmorph.image.ChainMap;
import io.diskmorph.image.CheckReport;
import io.diskmorph.image.DiskImage;
import io.diskmorph.image.Images;
import io.diskmorph.image.MapEntry;
import io.diskmorph.image.RepairMode;
import io.diskmorph.image.UnsupportedFeatureException;
import io.diskmorph.storage.MemoryStorage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;

/** In-place conversion oracles shared by the fuzz targets and the hostile-image tests. */
final class Conversions {
    private static final int SAMPLE = 256 * 1024;
    private static final long MAX_SAMPLED = 16L << 20;

    private Conversions() {
    }

    /** A plan's figures must be consistent with each other and with the file. */
    static void assertSane(ConversionPlan p, long fileLength) {
        if (p.originalLength() != fileLength) {
            throw new AssertionError("plan: original length " + p.originalLength() + " for a " + fileLength + "-byte file");
        }
        if (p.finalLength() < p.headerBytes() || p.keptBytes() < 0 || p.movedBytesTotal() < 0 || p.extraSpace() < 0
                || p.journalBytes() < 0 || p.overwrittenBytes() < 0 || p.overwrittenBytes() > p.originalLength()
                || p.keptBytes() + p.movedBytesTotal() > p.virtualSize() + p.clusterSize() * 2) {
            throw new AssertionError(String.format("plan figures inconsistent: final %d, header %d, kept %d, moved %d,"
                            + " overwritten %d of %d, virtual %d", p.finalLength(), p.headerBytes(), p.keptBytes(),
                    p.movedBytesTotal(), p.overwrittenBytes(), p.originalLength(), p.virtualSize()));
        }
    }

    /**
     * Converts {@code file} in place (source probed) and checks the outcome: a
     * refusal leaves the file byte-identical and no sidecar behind; a success
     * leaves a target image with the same virtual size and guest bytes that
     * checks clean, and no journal.
     */
    static void convertAndCompare(byte[] file, String target, Map<String, String> options) {
        MemoryStorage s = Harness.storage(file);
        MemoryDir dir = new MemoryDir(Harness.STORAGE_CAP);
        Map<Long, byte[]> before = new LinkedHashMap<>();
        long[] size = {-1};
        String[] sourceFormat = {null};
        Harness.attempt("open source", () -> {
            try (DiskImage img = Images.open(s.copy(true), null, true)) {
                size[0] = img.virtualSize();
                sourceFormat[0] = img.format().name();
                sample(img, before);
            }
        });
        if (target.equals("raw") && Math.max(size[0], file.length) > Harness.STORAGE_CAP / 2) {
            // raw puts guest bytes at their guest offsets, and the roll-forward's tables and spare area lie
            // past the end of the disk and of the file: a disk over half the in-memory medium does not fit it
            // (the medium's cap limits the file length, not the allocated blocks the plan counts)
            return;
        }
        ConversionFile cf = new ConversionFile(s, dir, "fuzz.img", null, null);
        boolean[] nothing = {false};
        boolean converted = Harness.attempt("convert --in-place", () -> nothing[0] = InPlaceConverter.convert(cf,
                new InPlaceConverter.Request(null, target, options, false), InPlaceConverter.Progress.NONE)
                .nothingToChange());
        if (!converted) {
            Harness.assertUnchanged(file, s, "a refused in-place conversion");
            if (!dir.files().isEmpty()) {
                throw new AssertionError("a refused in-place conversion left " + dir.files().keySet());
            }
            return;
        }
        if (size[0] < 0) {
            throw new AssertionError("converted an image that cannot be opened");
        }
        if (nothing[0]) {
            // the image is the target format with the options asked already: nothing is written, so the
            // file is as it came (leaks and all: a conversion is no repair)
            Harness.assertUnchanged(file, s, "a conversion with nothing to change");
            if (!dir.files().isEmpty()) {
                throw new AssertionError("a conversion with nothing to change left " + dir.files().keySet());
            }
            return;
        }
        if (!dir.files().isEmpty()) {
            throw new AssertionError("a finished conversion left " + dir.files().keySet());
        }
        try (DiskImage img = Images.open(s.copy(true), target, true)) {
            // (raw to raw changes nothing: a file not a whole number of sectors keeps its length)
            if (target.equals("raw") && !"raw".equals(sourceFormat[0]) && s.size() != size[0]) {
                throw new AssertionError("a raw result of " + s.size() + " bytes for a disk of " + size[0]);
            }
            if (img.virtualSize() != size[0]) {
                throw new AssertionError("virtual size " + size[0] + " became " + img.virtualSize());
            }
            for (Map.Entry<Long, byte[]> e : before.entrySet()) {
                ByteBuffer b = ByteBuffer.allocate(e.getValue().length);
                img.read(b, e.getKey());
                if (!Arrays.equals(e.getValue(), b.array())) {
                    throw new AssertionError("guest bytes at " + e.getKey() + " differ after conversion");
                }
            }
            CheckReport r;
            try {
                r = img.check(RepairMode.NONE);
            } catch (UnsupportedFeatureException e) {
                return; // a target without a checker (qcow2): HostileImageTest has qemu-img check it
            }
            if (!r.isClean()) {
                throw new AssertionError("converted image does not check clean: " + r.messages);
            }
        } catch (IOException e) {
            throw new AssertionError("converted image cannot be read", e);
        }
    }

    /** Guest bytes at the start (and end) of every map extent, up to a total. */
    private static void sample(DiskImage img, Map<Long, byte[]> into) throws IOException {
        ChainMap map = new ChainMap(img, true);
        long total = 0;
        while (map.hasNext() && total < MAX_SAMPLED) {
            MapEntry e = map.next();
            for (long at : new long[]{e.start(), Math.max(e.start(), e.start() + e.length() - SAMPLE)}) {
                if (into.containsKey(at)) {
                    continue;
                }
                int n = (int) Math.min(SAMPLE, e.start() + e.length() - at);
                ByteBuffer b = ByteBuffer.allocate(n);
                img.read(b, at);
                into.put(at, b.array());
                total += n;
            }
        }
    }
}
