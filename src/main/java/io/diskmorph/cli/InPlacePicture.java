package io.diskmorph.cli;

import io.diskmorph.convert.ConversionFile;
import io.diskmorph.convert.ConversionPlan;
import io.diskmorph.convert.InPlaceConverter;
import io.diskmorph.convert.PlanObserver;
import io.diskmorph.image.DiskImage;
import io.diskmorph.image.Images;
import io.diskmorph.image.Mapping;
import io.diskmorph.image.OpenOptions;
import io.diskmorph.layout.HostLayout;
import io.diskmorph.layout.LayoutSvg;
import io.diskmorph.storage.LockMode;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * {@code convert --in-place --dry-run --layout FILE}: the file before and
 * after the planned conversion, side by side, in bins of one size, with
 * lines from where moved data is to where it goes. The after picture comes
 * from the dry run itself ({@link PlanObserver}: every unit's place and
 * every metadata write); to raw, every unit ends at its guest offset.
 * Nothing is written but FILE.
 */
final class InPlacePicture {
    private InPlacePicture() {
    }

    /** Plans again with an observer, draws, writes {@code out}; returns the plan of that dry run. */
    static ConversionPlan write(ConversionFile file, InPlaceConverter.Request req, ConversionPlan first, Path image,
                                String sourceFormat, Path out) throws IOException {
        long binBytes = HostLayout.binBytesFor(Math.max(first.originalLength(), first.finalLength()),
                HostLayout.MAX_BINS / 2);
        String name = image.getFileName().toString();
        HostLayout before;
        HostLayout.Builder after = new HostLayout.Builder(name, first.targetFormat(), first.finalLength(),
                first.virtualSize(), binBytes);
        Map<Long, long[]> moves = new HashMap<>();
        ConversionPlan plan = first;
        try (DiskImage src = Images.open(image, OpenOptions.forReading().withFormat(sourceFormat)
                .withLock(LockMode.NONE))) {
            before = HostLayout.of(src, name, binBytes);
            if (first.targetFormat().equals("raw")) {
                long v = src.virtualSize();
                for (long pos = 0; pos < v; ) {
                    Mapping m = src.mapping(pos, v - pos);
                    if (m instanceof Mapping.Data d && (d.file() == null || d.file() == src.storage())) {
                        after.data(pos, m.length(), pos);
                        group(moves, binBytes, d.hostOffset(), pos, m.length());
                    } else if (m instanceof Mapping.Compressed c) {
                        after.data(pos, m.length(), pos);
                        group(moves, binBytes, c.hostOffset(), pos, m.length());
                    }
                    pos += m.length();
                }
            } else {
                boolean[] told = {false};
                plan = InPlaceConverter.plan(file, req, new PlanObserver() {
                    @Override
                    public void data(long guestOffset, long fromHost, long toHost, long length) {
                        told[0] = true;
                        after.data(toHost, length, guestOffset);
                        if (fromHost != toHost && fromHost >= 0) {
                            group(moves, binBytes, fromHost, toHost, length);
                        }
                    }

                    @Override
                    public void metadata(long hostOffset, long length) {
                        told[0] = true;
                        after.metadata("new " + first.targetFormat() + " metadata", hostOffset, length);
                    }
                });
                if (!told[0]) {
                    // a switch by a trailer or by renames (fixed VHD <-> raw, VMDK flat pairs): nothing moves,
                    // the data stays where it is and only a footer or descriptor changes
                    long v = src.virtualSize();
                    for (long pos = 0; pos < v; ) {
                        Mapping m = src.mapping(pos, v - pos);
                        if (m instanceof Mapping.Data d && (d.file() == null || d.file() == src.storage())) {
                            after.data(d.hostOffset(), m.length(), pos);
                        }
                        pos += m.length();
                    }
                }
            }
            if (first.targetFormat().equals("raw")) {
                after.hole(0, first.finalLength()); // every range that reads zeros is punched
            } else {
                after.holesOf(src.storage());
            }
        }
        List<LayoutSvg.Move> list = new ArrayList<>();
        for (long[] g : moves.values()) {
            list.add(new LayoutSvg.Move(g[0] * binBytes, g[1] * binBytes, g[2]));
        }
        String title = name + ": " + first.sourceFormat() + " -> " + first.targetFormat() + " in place (planned)";
        Files.writeString(out, LayoutSvg.pair(before, after.build(), list, title), StandardCharsets.UTF_8);
        return plan;
    }

    /** Moves grouped by the bins they join (a 4 TiB disk has millions of units: the picture needs bins). */
    private static void group(Map<Long, long[]> moves, long binBytes, long from, long to, long length) {
        long a = from / binBytes;
        long b = to / binBytes;
        moves.computeIfAbsent(a * (1L << 31) + b, k -> new long[]{a, b, 0})[2] += length;
    }
}
