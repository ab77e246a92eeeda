package io.diskmorph.format.qcow;

import io.diskmorph.image.RelocatableImage;
import io.diskmorph.image.RelocationTable;
import io.diskmorph.image.RelocationUnits;
import io.diskmorph.image.UnsupportedFeatureException;
import io.diskmorph.storage.Storage;

import java.io.IOException;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteBuffer;
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
final class QcowRelocation implements RelocatableImage.Relocation {
    private static final VarHandle BE64 = MethodHandles.byteArrayViewVarHandle(long[].class, ByteOrder.BIG_ENDIAN);
    private static final int PAGE = 4096;

    private final Storage file;
    private final long clusterSize;
    private final long entries;
    private final long base;
    private final long end;
    private final RelocationTable[] l2;

    private QcowRelocation(Storage file, QcowHeader h, long base, int[] slot, int count) {
        this.file = file;
        this.clusterSize = h.clusterSize();
        this.entries = h.l2Entries();
        this.base = base;
        long tables = l2Start(h, base);
        long stride = tableStride(h);
        this.end = tables + stride * count;
        this.l2 = new RelocationTable[slot.length];
        for (int i = 0; i < slot.length; i++) {
            if (slot[i] >= 0) {
                l2[i] = new RelocationTable(tables + stride * slot[i], h.l2TableBytes(),
                        Math.min(PAGE, h.l2TableBytes()));
            }
        }
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
        int count = 0;
        for (int s : slot) {
            count += s >= 0 ? 1 : 0;
        }
        QcowRelocation r = new QcowRelocation(file, h, base, slot, count);
        RelocationUnits.forEachData(img, c, base, "cluster", r::setEntry);
        // the L1 table in pieces: it may be large (8 bytes per L2 table's range), and is mostly zeros
        long l1Bytes = h.l1Bytes();
        byte[] piece = new byte[(int) Math.min(1 << 20, Math.max(8, l1Bytes))];
        for (long done = 0; done < l1Bytes; done += piece.length) {
            java.util.Arrays.fill(piece, (byte) 0);
            int n = (int) Math.min(piece.length, l1Bytes - done);
            for (int k = 0; k < n / 8; k++) {
                RelocationTable t = r.l2[(int) (done / 8 + k)];
                if (t != null) {
                    BE64.set(piece, 8 * k, t.hostOffset());
                }
            }
            file.write(ByteBuffer.wrap(piece, 0, n), base + done);
        }
        for (RelocationTable t : r.l2) {
            if (t != null) {
                t.writeWhole(file);
            }
        }
        file.sync();
        file.write(ByteBuffer.allocate(8).order(ByteOrder.BIG_ENDIAN).putLong(0, base), QcowHeader.OFF_L1_TABLE);
        file.sync();
        return r;
    }

    private void setEntry(long guest, long host) {
        long cluster = guest / clusterSize;
        RelocationTable t = l2[(int) (cluster / entries)];
        int at = (int) (cluster % entries) * 8;
        BE64.set(t.bytes(), at, host);
        t.changed(at);
    }

    private long entryHost(long guest) {
        long cluster = guest / clusterSize;
        RelocationTable t = l2[(int) (cluster / entries)];
        return t == null ? 0 : (long) BE64.get(t.bytes(), (int) (cluster % entries) * 8);
    }

    @Override
    public long metadataEnd() {
        return end;
    }

    @Override
    public void remap(long[] guestOffsets, long[] hostOffsets, int count) throws IOException {
        for (int k = 0; k < count; k++) {
            long host = hostOffsets[k];
            long was = entryHost(guestOffsets[k]);
            RelocationUnits.checkRemap(guestOffsets[k], was, host, clusterSize, base);
            setEntry(guestOffsets[k], host);
        }
        file.sync(); // the caller's data, before any entry points to it
        for (RelocationTable t : l2) {
            if (t != null) {
                t.writeDirty(file);
            }
        }
        file.sync();
    }

    @Override
    public void sync() throws IOException {
        file.sync();
    }
}
