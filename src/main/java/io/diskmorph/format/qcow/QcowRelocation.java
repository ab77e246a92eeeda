package io.diskmorph.format.qcow;

import io.diskmorph.image.L2Relocation;
import io.diskmorph.image.RelocatableImage;
import io.diskmorph.image.RelocationUnits;
import io.diskmorph.image.UnsupportedFeatureException;
import io.diskmorph.storage.Storage;

import java.io.IOException;
import java.nio.ByteOrder;

/**
 * Moving a qcow image's clusters inside its file, the image valid after
 * every durable step (the driver's side of the in-place conversion to raw,
 * {@link RelocatableImage}), as {@code qed.QedRelocation} does for QED.
 *
 * <p>{@link #start} writes a new L1 table and the L2 tables that map data
 * past every cluster the image uses, each table on its own clusters (so
 * the check's one-structure-per-cluster rule holds), syncs, and switches
 * the header's l1_table_offset with one 8-byte write in the first sector,
 * synced. The old L1 (right after the header, often reaching past the
 * header cluster) and L2 tables are then dead space. qcow has no reference
 * counts: a cluster's old place is free once its new entry is durable.
 * {@link #remap} syncs the caller's data, writes the dirty pages of the L2
 * tables, then syncs. Images with a backing file (a raw file cannot name
 * one) and compressed clusters are refused, in one line, before anything
 * is written.
 */
final class QcowRelocation extends L2Relocation {
    private static final int PAGE = 4096;

    private QcowRelocation(Storage file, QcowHeader h, long base, long[] tableOffsets, long end) {
        super(file, ByteOrder.BIG_ENDIAN, h.clusterSize(), h.l2Entries(), h.l2TableBytes(),
                Math.min(PAGE, h.l2TableBytes()), base, end, tableOffsets);
    }

    /** L2 tables start at the cluster after the new L1 table. */
    private static long l2Start(QcowHeader h, long base) {
        long c = h.clusterSize();
        return base + Math.ceilDiv(Math.max(8, h.l1Bytes()), c) * c;
    }

    /** Each L2 table on whole clusters of its own. */
    private static long tableStride(QcowHeader h) {
        long c = h.clusterSize();
        return Math.ceilDiv(h.l2TableBytes(), c) * c;
    }

    static String whyNot(QcowImage img) {
        if (img.header.hasBackingFile() || img.backingFileName() != null) {
            return "the image has a backing file (" + img.backingFileName() + "), which a raw file cannot refer "
                    + "to; use a copy conversion, which reads the whole chain";
        }
        return null;
    }

    /** L2 slot per L1 index (-1: the range maps no data); compressed data is refused here. */
    private static int[] slots(QcowImage img) throws IOException {
        QcowHeader h = img.header;
        return RelocationUnits.tableSlots(img, h.l2Coverage(), Math.toIntExact(h.l1Entries()));
    }

    static long metadataBytes(QcowImage img, long base) throws IOException {
        int count = 0;
        for (int s : slots(img)) {
            count += s >= 0 ? 1 : 0;
        }
        return l2Start(img.header, base) - base + tableStride(img.header) * count;
    }

    static QcowRelocation start(QcowImage img, Storage file, long base) throws IOException {
        String why = whyNot(img);
        if (why != null) {
            throw new UnsupportedFeatureException(why);
        }
        QcowHeader h = img.header;
        long c = h.clusterSize();
        if (base % c != 0) {
            throw new IllegalArgumentException("metadata offset " + base + " is not cluster aligned");
        }
        int[] slot = slots(img);
        long tables = l2Start(h, base);
        long stride = tableStride(h);
        int count = 0;
        long[] offsets = new long[slot.length];
        for (int i = 0; i < slot.length; i++) {
            offsets[i] = slot[i] >= 0 ? tables + stride * slot[i] : -1;
            count += slot[i] >= 0 ? 1 : 0;
        }
        QcowRelocation r = new QcowRelocation(file, h, base, offsets, tables + stride * count);
        RelocationUnits.forEachData(img, c, base, "cluster", r::setEntry);
        r.writeTables(base, h.l1Bytes());
        file.sync();
        r.switchField(QcowHeader.OFF_L1_TABLE, base);
        return r;
    }
}
