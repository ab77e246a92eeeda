package io.diskmorph.convert;

import io.diskmorph.image.CreateSpec;
import io.diskmorph.image.FormatRegistry;
import io.diskmorph.image.ImageFormat;
import io.diskmorph.image.MeasurableFormat;
import io.diskmorph.image.NotEnoughSpaceException;
import io.diskmorph.image.UnsupportedFeatureException;

import java.io.IOException;
import java.util.List;
import java.util.Map;

/**
 * In place to raw for a source whose units cannot move one at a time while
 * the file stays an image of its format (a VDI's blocks sit at offsets the
 * header fixes, a VHDX's at 1 MiB steps that rarely match its block size, a
 * streamOptimized VMDK's grains and qcow2's compressed clusters are shorter
 * than their homes, qcow2 subclusters): two conversions in a row, each
 * crash-safe on its own terms.
 *
 * <ol>
 * <li>An in-place conversion to an intermediate format that can move its
 *     units ({@link #intermediateFor}: qcow2, or QED for a qcow2 source),
 *     the journaled switch every pair uses (blocks that line up stay, the
 *     rest move, zeros never). A crash leaves the source, or the
 *     intermediate image, or a state {@code recover} finishes.</li>
 * <li>The intermediate's roll-forward to raw ({@link ToRaw}). A crash
 *     leaves a valid intermediate image with the same content, which the
 *     same command continues.</li>
 * </ol>
 * The plan checks before anything is written what the second step will
 * need too (its memory, and its extra space on top of the first's), so the
 * second step is not refused after the first has run: the intermediate
 * image has no backing file (refused before) and no compressed clusters or
 * subclusters (the first step writes none).
 */
final class ToRawVia {
    /**
     * The format of the first step: qcow2, or QED for a qcow2 source that
     * cannot move its own units (subclusters, compressed clusters: QED has
     * neither, so they become plain clusters).
     */
    static String intermediateFor(String sourceFormat) {
        return sourceFormat.equals("qcow2") ? "qed" : "qcow2";
    }

    /** The intermediate's cluster size when the source's layout keeps nothing in place anyway. */
    private static final long SMALL_UNIT = 64 << 10;

    private ToRawVia() {
    }

    /** The first step's plan, and the second step's bounds. */
    private record Planned(PreparedConversion first, ConversionPlan.Draft combined) {
    }

    static ConversionPlan plan(ConversionFile file, InPlaceConverter.Request request, String sourceFormat,
                               String why, Cancellation cancel, PhaseClock clock) throws IOException {
        return planBoth(file, request, sourceFormat, why, cancel, clock).combined.freeze(clock.stop());
    }

    static ConversionPlan convert(ConversionFile file, InPlaceConverter.Request request, String sourceFormat,
                                  String why, Cancellation cancel, PhaseClock clock) throws IOException {
        Planned p = planBoth(file, request, sourceFormat, why, cancel, clock);
        ConversionPlan.Draft d = p.combined;
        String via = p.first.plan().targetFormat();
        if (d.availableSpace < d.extraSpace) {
            throw new NotEnoughSpaceException("the in-place conversion to raw (through " + via
                    + ": its new metadata and moved blocks, then the relocated tables, spare area and journal)",
                    d.extraSpace, d.availableSpace);
        }
        ConversionPlan first = Executor.execute(file, p.first, cancel, clock);
        ConversionPlan second;
        try {
            second = ToRaw.convert(file, new InPlaceConverter.Request(via, ToRaw.TARGET, Map.of(), false),
                    cancel, clock);
        } catch (Cancellation.CancelledException e) {
            throw e.validAs() != null ? e : e.leftAs(via); // the first step is done either way
        }
        return done(d, first, second).freeze(clock.stop());
    }

    private static Planned planBoth(ConversionFile file, InPlaceConverter.Request request, String sourceFormat,
                                    String why, Cancellation cancel, PhaseClock clock) throws IOException {
        String via = intermediateFor(sourceFormat);
        InPlaceConverter.Request toVia = new InPlaceConverter.Request(request.sourceFormat(), via, Map.of(), false);
        PreparedConversion first = Planner.plan(file, toVia, cancel, clock);
        ConversionPlan a = first.plan();
        if (a.keptBytes() == 0 && a.movedBytesTotal() > 0 && a.clusterSize() > SMALL_UNIT) {
            // nothing stays at the cluster size that follows the source (a dynamic VHD's data lies 512 bytes
            // past each block's bitmap): smaller clusters then cost less spare area in the second step
            toVia = new InPlaceConverter.Request(request.sourceFormat(), via,
                    Map.of("cluster_size", Long.toString(SMALL_UNIT)), false);
            first = Planner.plan(file, toVia, cancel, clock);
            a = first.plan();
        }
        ConversionPlan.Draft d = new ConversionPlan.Draft();
        d.sourceFormat = a.sourceFormat();
        d.targetFormat = ToRaw.TARGET;
        d.virtualSize = a.virtualSize();
        d.clusterSize = a.clusterSize();
        d.originalLength = a.originalLength();
        d.finalLength = a.virtualSize();
        d.movedBytes.putAll(a.movedBytes());
        d.movedUnits = a.movedUnits();
        d.zeroClusters = a.zeroClusters();
        d.zeroedDataBytes = a.zeroedDataBytes();
        d.availableSpace = a.availableSpace();
        d.policy = "through " + via + ", then roll-forward";
        d.nothingToChange = false;

        // the second step's bounds: every data unit may move, the qcow2 tables are relocated whole
        long unit = a.clusterSize();
        long v = a.virtualSize();
        long dataBytes = a.keptBytes() + a.movedBytesTotal();
        long dataUnits = a.keptUnits() + a.movedUnits();
        long fileUnits = Math.ceilDiv(Math.max(v, a.finalLength()), unit);
        ToRaw.checkMemory(file, Math.ceilDiv(v, unit), fileUnits, unit);
        int spare = ToRaw.spareUnits(v, unit);
        long tables = metadataBound(via, v, unit, (fileUnits + spare) * unit);
        long journal = ToRaw.lastStepJournalBytes(unit, v);
        long second = ToRaw.extraSpace(tables, spare, unit, journal, dataUnits);
        d.movedBytes.merge(MoveReason.TO_GUEST_OFFSET, dataBytes, Long::sum);
        d.movedUnits += dataUnits;
        d.metadataBytes = a.metadataBytes() + tables;
        d.headerBytes = a.headerBytes() + Journal.SECTOR;
        d.overwrittenBytes = a.overwrittenBytes() + Math.min(unit, v);
        d.journalBytes = Math.max(a.journalBytes(), journal);
        d.extraSpace = a.extraSpace() + second;
        d.notes.add("the " + a.sourceFormat() + " image cannot move its units to their guest offsets itself ("
                + why + "): the conversion goes through " + via + ", first in place to " + via + " ("
                + a.keptBytes() + " bytes kept, " + a.movedBytesTotal() + " moved, journaled), then a roll-forward "
                + "to raw that moves at most the " + dataBytes + " data bytes to their guest offsets");
        d.notes.add("a crash in the first step leaves the " + a.sourceFormat() + " image or the " + via
                + " one ('diskmorph recover' finishes a pending journal); a crash in the second leaves a valid "
                + via + " image with the same content, which the same command continues; no rollback "
                + "record (the way back is 'convert --in-place -O " + a.sourceFormat() + "')");
        for (String note : a.notes()) {
            if (!note.startsWith(Planner.SMALLER_CLUSTER_NOTE)) { // -o cluster_size is not an option of raw
                d.notes.add(note);
            }
        }
        return new Planned(first, d);
    }

    /**
     * Bytes of every qcow2 table the second step may relocate for a disk of
     * {@code virtualSize} in {@code unit} clusters within a file of at most
     * {@code fileLength} bytes: qemu-img measure's metadata of a fully
     * allocated image (L1, every L2 table, refcounts), plus refcount blocks
     * and table for the whole file, which holds more than the guest then.
     */
    static long metadataBound(String via, long virtualSize, long unit, long fileLength) throws IOException {
        ImageFormat format = FormatRegistry.byName(via);
        if (!(format instanceof MeasurableFormat m)) {
            throw new UnsupportedFeatureException(via + " cannot be measured");
        }
        long full = m.measure(new CreateSpec(virtualSize, Map.of("cluster_size", Long.toString(unit)), null, null),
                null).fullyAllocated();
        long data = Math.ceilDiv(virtualSize, unit) * unit;
        long refcountsPerBlock = unit * 8 / 16; // 16-bit refcounts, the default
        long refBlocks = Math.ceilDiv(Math.ceilDiv(fileLength, unit) + 64, refcountsPerBlock);
        long refTable = Math.ceilDiv(refBlocks * 8, unit);
        return full - data + (refBlocks + refTable + 2) * unit;
    }

    /** The figures of both steps as run, with the bound planned. */
    private static ConversionPlan.Draft done(ConversionPlan.Draft planned, ConversionPlan first, ConversionPlan second) {
        ConversionPlan.Draft d = planned.copy();
        d.keptBytes = second.keptBytes();
        d.keptUnits = second.keptUnits();
        d.movedBytes.clear();
        d.movedBytes.putAll(first.movedBytes());
        second.movedBytes().forEach((k, b) -> d.movedBytes.merge(k, b, Long::sum));
        d.movedUnits = first.movedUnits() + second.movedUnits();
        d.zeroClusters = second.zeroClusters();
        d.metadataBytes = first.metadataBytes() + second.metadataBytes();
        d.headerBytes = first.headerBytes() + second.headerBytes();
        d.overwrittenBytes = first.overwrittenBytes() + second.overwrittenBytes();
        d.journalBytes = Math.max(first.journalBytes(), second.journalBytes());
        d.finalLength = second.finalLength();
        d.notes.clear();
        String via = first.targetFormat();
        d.notes.add("through " + via + ": first in place to " + via + " (" + first.keptBytes()
                + " bytes kept, " + first.movedBytesTotal() + " moved), then the roll-forward to raw ("
                + second.movedBytesTotal() + " bytes moved to their guest offsets)");
        d.notes.addAll(List.copyOf(second.notes()));
        return d;
    }
}
