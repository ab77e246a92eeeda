package io.diskmorph.format.qcow2;

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
import java.util.ArrayList;
import java.util.List;

/**
 * Moving a qcow2 image's clusters inside its file, the image valid after
 * every durable step (the driver's side of the in-place conversion to raw,
 * {@link RelocatableImage}).
 *
 * <p>{@link #start} writes a complete new set of tables in one region past
 * every cluster the image uses (refcount table, refcount blocks, L1 table,
 * the L2 tables that map data), describing the mapping as it is, syncs, and
 * switches the header's three table fields with one write inside the first
 * sector, synced: before that write the old tables are the image, after it
 * the new ones, and every old table cluster is free. The tables then stay
 * in memory (for every L2 table that maps data: one cluster each, plus the
 * refcount blocks), and {@link #remap} changes entries and writes back only
 * the dirty pages of the tables, in qcow2's order: refcounts of the new
 * clusters (with the caller's data writes), sync, L2 entries, sync,
 * refcounts of the old clusters (made durable by the next sync). A crash leaves the old or the new entry of
 * each cluster, both with their data intact and a refcount of 1; at worst
 * clusters leak.
 *
 * <p>Zero and unallocated clusters both become unallocated entries: without
 * a backing file (refused) they read zeros either way, and a zero cluster
 * with a preallocated host cluster gives that cluster back.
 */
final class Qcow2Relocation implements RelocatableImage.Relocation {
    private static final VarHandle BE64 = MethodHandles.byteArrayViewVarHandle(long[].class, ByteOrder.BIG_ENDIAN);
    /** Header fields l1_table_offset, refcount_table_offset, refcount_table_clusters: bytes 40..60. */
    private static final int TABLE_FIELDS_OFFSET = 40;

    private final Storage file;
    private final Qcow2Geometry geo;
    private final long clusterSize;
    private final int pageSize;
    private final Layout layout;
    /** L2 table per L1 index, null where no cluster holds data. */
    private final RelocationTable[] l2;
    private final RelocationTable[] refBlocks;

    /**
     * Where the new tables go: from {@code base}, the refcount table, the
     * refcount blocks (covering every cluster up to the region's end), the
     * L1 table, then one L2 table per L1 entry that maps data.
     */
    record Layout(long base, long refTableClusters, long refBlocks, long l1Clusters, int[] l2Slot, int l2Count,
                  long clusterSize) {
        long refTableOffset() {
            return base;
        }

        long refBlockOffset(long k) {
            return base + (refTableClusters + k) * clusterSize;
        }

        long l1Offset() {
            return base + (refTableClusters + refBlocks) * clusterSize;
        }

        long l2Offset(int slot) {
            return l1Offset() + (l1Clusters + slot) * clusterSize;
        }

        long end() {
            return l2Offset(l2Count);
        }

        long bytes() {
            return end() - base;
        }
    }

    private Qcow2Relocation(Storage file, Qcow2Geometry geo, Layout layout) {
        this.file = file;
        this.geo = geo;
        this.clusterSize = geo.clusterSize;
        this.pageSize = (int) Math.min(4096, clusterSize);
        this.layout = layout;
        this.l2 = new RelocationTable[layout.l2Slot.length];
        this.refBlocks = new RelocationTable[Math.toIntExact(layout.refBlocks)];
    }

    /** Why the image cannot be relocated, or null. */
    static String whyNot(Qcow2Image img) throws IOException {
        Qcow2Header h = img.header;
        if (geo(img).extendedL2) {
            return "qcow2 images with extended L2 entries (subclusters) cannot be relocated yet";
        }
        if (h.cryptMethod != Qcow2Header.CRYPT_NONE) {
            return "encrypted qcow2 images cannot be converted in place";
        }
        if (img.backingFileName() != null) {
            return "the image has a backing file (" + img.backingFileName() + "), which a raw file cannot refer "
                    + "to; use a copy conversion, which reads the whole chain";
        }
        if (!img.snapshots().isEmpty()) {
            return "the image has " + img.snapshots().size() + " internal snapshot(s), which a raw file cannot "
                    + "hold (delete them with 'qemu-img snapshot -d' or use a copy conversion)";
        }
        if (h.has(Qcow2Header.INCOMPAT_DATA_FILE)) {
            return "the image keeps its data in an external data file";
        }
        if (BitmapDirectory.extension(h) != null || h.autoclear != 0) {
            return "the image has persistent dirty bitmaps, which a raw file cannot hold";
        }
        if (h.has(Qcow2Header.INCOMPAT_DIRTY) || h.has(Qcow2Header.INCOMPAT_CORRUPT)) {
            return "the image is marked dirty or corrupt; run 'diskmorph check -r all' first";
        }
        return null;
    }

    private static Qcow2Geometry geo(Qcow2Image img) {
        return img.geo;
    }

    /** The region's layout at {@code base}, for the image's current mapping. */
    static Layout layout(Qcow2Image img, long base) throws IOException {
        Qcow2Geometry geo = img.geo;
        long c = geo.clusterSize;
        if (base % c != 0) {
            throw new IllegalArgumentException("metadata offset " + base + " is not cluster aligned");
        }
        int l1Size = img.header.l1Size;
        int[] slot = RelocationUnits.tableSlots(img, 1L << geo.l1Shift, l1Size);
        int count = 0;
        for (int t : slot) {
            count += t >= 0 ? 1 : 0;
        }
        long l1Clusters = Math.ceilDiv(8L * l1Size, c);
        long entries = geo.refblockEntries();
        long rt = 1;
        long rb = 1;
        for (int round = 0; round < 64; round++) {
            long clusters = base / c + rt + rb + l1Clusters + count;
            long needBlocks = Math.ceilDiv(clusters, entries);
            long needTable = Math.ceilDiv(8 * needBlocks, c);
            if (needBlocks == rb && needTable == rt) {
                break;
            }
            rb = Math.max(rb, needBlocks);
            rt = Math.max(rt, needTable);
        }
        if (rt * c > Qcow2Header.MAX_REFTABLE_BYTES || rb > Integer.MAX_VALUE) {
            throw new UnsupportedFeatureException("the image is too large for its tables to be relocated");
        }
        return new Layout(base, rt, rb, l1Clusters, slot, count, c);
    }

    /**
     * Writes the new tables at {@code base} and switches the header to them
     * (see the class comment). {@code file} is the image's file, writable.
     */
    static Qcow2Relocation start(Qcow2Image img, Storage file, long base) throws IOException {
        String why = whyNot(img);
        if (why != null) {
            throw new UnsupportedFeatureException(why);
        }
        Layout layout = layout(img, base);
        Qcow2Relocation r = new Qcow2Relocation(file, img.geo, layout);
        r.build(img);
        r.writeAll();
        file.sync();
        ByteBuffer fields = ByteBuffer.allocate(20).order(ByteOrder.BIG_ENDIAN);
        fields.putLong(layout.l1Offset()).putLong(layout.refTableOffset()).putInt(Math.toIntExact(layout.refTableClusters));
        fields.flip();
        file.write(fields, TABLE_FIELDS_OFFSET);
        file.sync();
        return r;
    }

    private void build(Qcow2Image img) throws IOException {
        long c = clusterSize;
        int cs = Math.toIntExact(c);
        for (int k = 0; k < refBlocks.length; k++) {
            refBlocks[k] = new RelocationTable(layout.refBlockOffset(k), cs, pageSize);
        }
        for (int i = 0; i < l2.length; i++) {
            if (layout.l2Slot[i] >= 0) {
                l2[i] = new RelocationTable(layout.l2Offset(layout.l2Slot[i]), cs, pageSize);
            }
        }
        setRefcount(0, 1); // the header
        for (long h = layout.base / c; h < layout.end() / c; h++) {
            setRefcount(h, 1);
        }
        // (an external data file is refused before: notRelocatable)
        RelocationUnits.forEachData(img, c, layout.base, "cluster", (g, host) -> {
            setEntry(g, host);
            setRefcount(host / c, 1);
        });
    }

    private void setEntry(long guest, long host) {
        long cluster = guest / clusterSize;
        RelocationTable t = l2[(int) (cluster >>> geo.l2Bits)];
        int at = (int) (cluster & (geo.l2Entries - 1)) * 8;
        BE64.set(t.bytes(), at, L2Entry.normal(host) | L2Entry.COPIED);
        t.changed(at);
    }

    private long entryHost(long guest) {
        long cluster = guest / clusterSize;
        RelocationTable t = l2[(int) (cluster >>> geo.l2Bits)];
        if (t == null) {
            return 0;
        }
        return L2Entry.hostOffset((long) BE64.get(t.bytes(), (int) (cluster & (geo.l2Entries - 1)) * 8));
    }

    private void setRefcount(long hostCluster, long value) {
        RelocationTable b = refBlocks[(int) (hostCluster >>> geo.refblockBits)];
        int i = (int) (hostCluster & (geo.refblockEntries() - 1));
        Refcounts.setEntry(b.bytes(), i, geo.refcountOrder, value);
        long bit = (long) i << geo.refcountOrder;
        b.changed((int) (bit / 8));
    }

    /** Every table whole (the first write of the region). */
    private void writeAll() throws IOException {
        long c = clusterSize;
        byte[] table = new byte[Math.toIntExact(layout.refTableClusters * c)];
        for (int k = 0; k < refBlocks.length; k++) {
            BE64.set(table, 8 * k, refBlocks[k].hostOffset());
        }
        file.write(ByteBuffer.wrap(table), layout.refTableOffset());
        for (RelocationTable b : refBlocks) {
            b.writeWhole(file);
        }
        byte[] l1 = new byte[Math.toIntExact(layout.l1Clusters * c)];
        for (int i = 0; i < l2.length; i++) {
            if (l2[i] != null) {
                BE64.set(l1, 8 * i, l2[i].hostOffset() | L1Entry.COPIED);
            }
        }
        file.write(ByteBuffer.wrap(l1), layout.l1Offset());
        for (RelocationTable t : l2) {
            if (t != null) {
                t.writeWhole(file);
            }
        }
    }

    private void writeDirty(RelocationTable[] tables) throws IOException {
        for (RelocationTable t : tables) {
            if (t != null) {
                t.writeDirty(file);
            }
        }
    }

    @Override
    public long metadataEnd() {
        return layout.end();
    }

    @Override
    public void remap(long[] guestOffsets, long[] hostOffsets, int count) throws IOException {
        long c = clusterSize;
        List<Long> old = new ArrayList<>(count);
        for (int k = 0; k < count; k++) {
            long host = hostOffsets[k];
            long was = entryHost(guestOffsets[k]);
            RelocationUnits.checkRemap(guestOffsets[k], was, host, c, layout.base);
            old.add(was);
            setRefcount(host / c, 1);
        }
        writeDirty(refBlocks);
        file.sync(); // the data and its refcounts; a crash before the L2 write leaks them at worst
        for (int k = 0; k < count; k++) {
            setEntry(guestOffsets[k], hostOffsets[k]);
        }
        writeDirty(l2);
        file.sync();
        for (long was : old) {
            setRefcount(was / c, 0);
        }
        writeDirty(refBlocks); // a lost decrement is a leak; the next sync makes it durable
    }

    @Override
    public void sync() throws IOException {
        writeDirty(refBlocks);
        file.sync();
    }
}
