package io.diskmorph.format.qed;

import io.diskmorph.image.Mapping;
import io.diskmorph.image.RelocatableImage;
import io.diskmorph.image.RelocationUnits;
import io.diskmorph.image.RelocationTable;
import io.diskmorph.image.UnsupportedFeatureException;
import io.diskmorph.storage.Storage;

import java.io.IOException;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteBuffer;
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
final class QedRelocation implements RelocatableImage.Relocation {
    private static final VarHandle LE64 = MethodHandles.byteArrayViewVarHandle(long[].class,
            ByteOrder.LITTLE_ENDIAN);
    /** Header field l1_table_offset. */
    private static final int L1_OFFSET_FIELD = 40;

    private final Storage file;
    private final long clusterSize;
    private final long tableBytes;
    private final long entries;
    private final int pageSize;
    private final long base;
    private final long end;
    private final RelocationTable[] l2;

    private QedRelocation(Storage file, QedHeader h, long base, int[] slot, int count) {
        this.file = file;
        this.clusterSize = h.clusterSize;
        this.tableBytes = h.tableBytes();
        this.entries = h.tableEntries();
        this.pageSize = 4096;
        this.base = base;
        this.end = base + tableBytes * (1 + count);
        this.l2 = new RelocationTable[slot.length];
        for (int i = 0; i < slot.length; i++) {
            if (slot[i] >= 0) {
                l2[i] = new RelocationTable(base + tableBytes * (1 + slot[i]), Math.toIntExact(tableBytes), pageSize);
            }
        }
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
        for (int s : slot) {
            count += s >= 0 ? 1 : 0;
        }
        QedRelocation r = new QedRelocation(file, h, base, slot, count);
        long c = h.clusterSize;
        RelocationUnits.forEachData(img, c, base, "cluster", r::setEntry);
        byte[] l1 = new byte[Math.toIntExact(h.tableBytes())];
        for (int i = 0; i < r.l2.length; i++) {
            if (r.l2[i] != null) {
                LE64.set(l1, 8 * i, r.l2[i].hostOffset());
            }
        }
        file.write(ByteBuffer.wrap(l1), base);
        for (RelocationTable t : r.l2) {
            if (t != null) {
                t.writeWhole(file);
            }
        }
        file.sync();
        ByteBuffer field = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(0, base);
        file.write(field, L1_OFFSET_FIELD);
        file.sync();
        return r;
    }

    private void setEntry(long guest, long host) {
        long cluster = guest / clusterSize;
        RelocationTable t = l2[(int) (cluster / entries)];
        int at = (int) (cluster % entries) * 8;
        LE64.set(t.bytes(), at, host);
        t.changed(at);
    }

    private long entryHost(long guest) {
        long cluster = guest / clusterSize;
        RelocationTable t = l2[(int) (cluster / entries)];
        return t == null ? 0 : (long) LE64.get(t.bytes(), (int) (cluster % entries) * 8);
    }

    @Override
    public long metadataEnd() {
        return end;
    }

    @Override
    public void remap(long[] guestOffsets, long[] hostOffsets, int count) throws IOException {
        long c = clusterSize;
        for (int k = 0; k < count; k++) {
            long host = hostOffsets[k];
            long was = entryHost(guestOffsets[k]);
            RelocationUnits.checkRemap(guestOffsets[k], was, host, c, base);
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
