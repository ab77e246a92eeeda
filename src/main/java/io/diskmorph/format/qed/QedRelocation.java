package io.diskmorph.format.qed;

import io.diskmorph.image.L2Relocation;
import io.diskmorph.image.RelocatableImage;
import io.diskmorph.image.RelocationUnits;
import io.diskmorph.image.UnsupportedFeatureException;
import io.diskmorph.storage.Storage;

import java.io.IOException;
import java.nio.ByteOrder;

/**
 * Moving a QED image's clusters inside its file, the image valid after every
 * durable step (the driver's side of the in-place conversion to raw, {@link
 * RelocatableImage}).
 *
 * <p>{@link #start} writes a new L1 table and the L2 tables that map data in
 * one region past every cluster the image uses (so every offset stays below
 * the file's end, as QED requires), syncs, and switches the header's
 * l1_table_offset with one 8-byte write in the first sector, synced. The
 * tables then stay in memory (the L1 table and one table per L2 that maps
 * data), and {@link #remap} syncs the caller's data, writes the dirty
 * pages of the L2 tables, then syncs. QED has no refcounts: the
 * old places are free once the new entries are durable (QED's check counts
 * free clusters below the end as leaks, which they are until the conversion
 * ends).
 *
 * <p>Zero clusters become unallocated entries: without a backing file
 * (refused) both read zeros.
 */
final class QedRelocation extends L2Relocation {
    /** Header field l1_table_offset. */
    private static final int L1_OFFSET_FIELD = 40;

    private QedRelocation(Storage file, QedHeader h, long base, long[] tableOffsets, int count) {
        super(file, ByteOrder.LITTLE_ENDIAN, h.clusterSize, h.tableEntries(), Math.toIntExact(h.tableBytes()), 4096,
                base, base + h.tableBytes() * (1 + count), tableOffsets);
    }

    static String whyNot(QedImage img) {
        QedHeader h = img.header();
        if (h.hasBackingFile() || img.backingFileName() != null) {
            return "the image has a backing file (" + img.backingFileName() + "), which a raw file cannot refer "
                    + "to; use a copy conversion, which reads the whole chain";
        }
        if (h.needsCheck()) {
            return "the image needs a check (not cleanly closed); run 'diskmorph check -r all' first";
        }
        if (h.headerSize != 1) {
            return "the QED header spans " + h.headerSize + " clusters, whose guest data could not be moved to "
                    + "their offsets";
        }
        if (h.autoclearFeatures != 0) {
            return "the image has autoclear features set";
        }
        return null;
    }

    /** L2 slot per L1 index (-1: the range maps no data). */
    private static int[] slots(QedImage img) throws IOException {
        long coverage = img.header().l2Coverage();
        return RelocationUnits.tableSlots(img, coverage, Math.toIntExact(Math.ceilDiv(img.virtualSize(), coverage)));
    }

    static long metadataBytes(QedImage img) throws IOException {
        int count = 0;
        for (int s : slots(img)) {
            count += s >= 0 ? 1 : 0;
        }
        return img.header().tableBytes() * (1 + count);
    }

    static QedRelocation start(QedImage img, Storage file, long base) throws IOException {
        String why = whyNot(img);
        if (why != null) {
            throw new UnsupportedFeatureException(why);
        }
        QedHeader h = img.header();
        if (base % h.clusterSize != 0) {
            throw new IllegalArgumentException("metadata offset " + base + " is not cluster aligned");
        }
        int[] slot = slots(img);
        int count = 0;
        long[] offsets = new long[slot.length];
        for (int i = 0; i < slot.length; i++) {
            offsets[i] = slot[i] >= 0 ? base + h.tableBytes() * (1 + slot[i]) : -1;
            count += slot[i] >= 0 ? 1 : 0;
        }
        QedRelocation r = new QedRelocation(file, h, base, offsets, count);
        RelocationUnits.forEachData(img, h.clusterSize, base, "cluster", r::setEntry);
        r.writeTables(base, h.tableBytes());
        file.sync();
        r.switchField(L1_OFFSET_FIELD, base);
        return r;
    }
}
