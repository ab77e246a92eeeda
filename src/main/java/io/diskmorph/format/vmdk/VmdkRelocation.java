package io.diskmorph.format.vmdk;

import io.diskmorph.image.Mapping;
import io.diskmorph.image.RelocatableImage;
import io.diskmorph.image.RelocationUnits;
import io.diskmorph.image.UnsupportedFeatureException;
import io.diskmorph.storage.Storage;

import java.io.IOException;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.BitSet;

/**
 * Moving the grains of a single-file hosted sparse VMDK (monolithicSparse)
 * inside its file, the image valid after every durable step (the driver's
 * side of the in-place conversion to raw, {@link RelocatableImage}).
 *
 * <p>{@link #start} writes a new grain directory and the grain tables that
 * map data in one region past every grain of the file, syncs, and then
 * switches the header in one write inside sector 0: gdOffset to the new
 * directory, and the redundant directory dropped (flag bit 1 cleared,
 * rgdOffset 0), synced. Why drop it: each remap would otherwise write every
 * entry twice, and a crash between the two copies leaves a table and its
 * redundant copy disagreeing, which check rightly reports as corruption; one
 * copy is updated with one write per table and stays a valid VMDK (the flag
 * is optional, qemu and VMware read the directory at gdOffset without it).
 * The file is raw at the end, so the redundancy is not missed.
 *
 * <p>Tables stay in memory (one per directory entry that maps data); {@link
 * #remap} syncs the caller's data, writes the dirty tables, then syncs, as
 * the driver's write path orders grains before their entries. Zeroed-grain
 * entries become unallocated ones: without a parent (refused) both read
 * zeros.
 */
final class VmdkRelocation implements RelocatableImage.Relocation {
    private static final VarHandle LE32 = MethodHandles.byteArrayViewVarHandle(int[].class,
            ByteOrder.LITTLE_ENDIAN);
    private static final int SECTOR = SparseHeader.SECTOR;
    /** Hosted header fields (VMDK technote): flags, rgdOffset, gdOffset. */
    private static final int FLAGS_FIELD = 8;
    private static final int RGD_FIELD = 48;
    private static final int GD_FIELD = 56;
    /** Directory and table entries are u32 sector numbers: nothing may lie at or past 2 TiB. */
    private static final long MAX_OFFSET = (1L << 32) * SECTOR;

    private final Storage file;
    private final long grainBytes;
    private final int tableEntries;
    private final long tableBytes;
    /** Start of the relocated metadata (unit aligned, past every grain) and its end. */
    private final long base;
    private final long end;
    /** Table per directory entry (null: maps no data). */
    private final byte[][] table;
    private final long[] tableHost;
    private final BitSet dirty = new BitSet();

    private VmdkRelocation(Storage file, SparseHeader h, long base, int[] slot, int count) {
        this.file = file;
        this.grainBytes = h.grainBytes();
        this.tableEntries = h.gtEntries();
        this.tableBytes = h.gtBytes();
        this.base = base;
        long directoryBytes = directoryBytes(h);
        this.end = base + directoryBytes + tableBytes * count;
        this.table = new byte[slot.length][];
        this.tableHost = new long[slot.length];
        for (int i = 0; i < slot.length; i++) {
            if (slot[i] >= 0) {
                table[i] = new byte[Math.toIntExact(tableBytes)];
                tableHost[i] = base + directoryBytes + tableBytes * slot[i];
            }
        }
    }

    /** The directory rounded up to whole sectors, so every table starts on a sector. */
    private static long directoryBytes(SparseHeader h) {
        return Math.ceilDiv(h.gdEntries() * 4, SECTOR) * SECTOR;
    }

    /** The one sparse extent of a monolithicSparse image, or null when the image is not one. */
    private static SparseExtent soleSparseExtent(VmdkImage img) {
        if (img.extents().size() != 1 || !(img.extents().getFirst() instanceof SparseExtent s)
                || s.file != img.storage()) {
            return null;
        }
        return s;
    }

    static String whyNot(VmdkImage img) {
        if (img.backingFileName() != null) {
            return "the VMDK has a parent (" + img.backingFileName() + "), which a raw file cannot refer to; use "
                    + "a copy conversion, which reads the whole chain";
        }
        SparseExtent s = soleSparseExtent(img);
        if (s == null) {
            return "only a single-file sparse VMDK (monolithicSparse) can have its grains moved in place";
        }
        SparseHeader h = s.header;
        if (h.kind() != SparseHeader.Kind.HOSTED) {
            return "the sparse extent is not a hosted one ('KDMV'), whose grains the driver cannot move";
        }
        if (h.compressed() || h.markers()) {
            return "the VMDK is streamOptimized: every grain is compressed";
        }
        if (h.descriptorOffset() + h.descriptorBytes() > h.grainBytes()) {
            return "the embedded descriptor reaches past the first grain (" + h.grainBytes() + " bytes), where "
                    + "guest data would have to go";
        }
        return null;
    }

    /** Table slot per directory entry (-1: the entry's range maps no data). */
    private static int[] slots(VmdkImage img, SparseHeader h) throws IOException {
        return RelocationUnits.tableSlots(img, h.gtCoverage(), Math.toIntExact(h.gdEntries()));
    }

    private static int count(int[] slot) {
        int count = 0;
        for (int s : slot) {
            count += s >= 0 ? 1 : 0;
        }
        return count;
    }

    static long metadataBytes(VmdkImage img) throws IOException {
        SparseExtent s = soleSparseExtent(img);
        if (s == null) {
            return 0;
        }
        SparseHeader h = s.header;
        return directoryBytes(h) + h.gtBytes() * count(slots(img, h));
    }

    static VmdkRelocation start(VmdkImage img, Storage file, long base) throws IOException {
        String why = whyNot(img);
        if (why != null) {
            throw new UnsupportedFeatureException(why);
        }
        SparseHeader h = soleSparseExtent(img).header;
        long g = h.grainBytes();
        if (base % g != 0) {
            throw new IllegalArgumentException("metadata offset " + base + " is not grain aligned");
        }
        int[] slot = slots(img, h);
        VmdkRelocation r = new VmdkRelocation(file, h, base, slot, count(slot));
        if (r.end > MAX_OFFSET) {
            throw new UnsupportedFeatureException("the relocated grain tables would end at offset " + r.end
                    + ", past what a VMDK grain directory can address (2 TiB)");
        }
        RelocationUnits.forEachData(img, g, base, "grain", r::setEntry);
        byte[] directory = new byte[Math.toIntExact(directoryBytes(h))];
        for (int i = 0; i < r.table.length; i++) {
            if (r.table[i] != null) {
                LE32.set(directory, 4 * i, (int) (r.tableHost[i] / SECTOR));
            }
        }
        file.write(ByteBuffer.wrap(directory), base);
        for (int i = 0; i < r.table.length; i++) {
            if (r.table[i] != null) {
                file.write(ByteBuffer.wrap(r.table[i]), r.tableHost[i]);
            }
        }
        r.dirty.clear();
        file.sync();
        // the switch: flags, rgdOffset and gdOffset all lie in sector 0, so one write of it
        ByteBuffer header = file.readBytes(0, SECTOR).order(ByteOrder.LITTLE_ENDIAN);
        header.putInt(FLAGS_FIELD, header.getInt(FLAGS_FIELD) & ~SparseHeader.FLAG_REDUNDANT_GD);
        header.putLong(RGD_FIELD, 0);
        header.putLong(GD_FIELD, base / SECTOR);
        file.write(header.clear(), 0);
        file.sync();
        return r;
    }

    private void setEntry(long guest, long host) {
        long grain = guest / grainBytes;
        int index = (int) (grain / tableEntries);
        LE32.set(table[index], (int) (grain % tableEntries) * 4, (int) (host / SECTOR));
        dirty.set(index);
    }

    private long entryHost(long guest) {
        long grain = guest / grainBytes;
        byte[] t = table[(int) (grain / tableEntries)];
        return t == null ? 0 : Integer.toUnsignedLong((int) LE32.get(t, (int) (grain % tableEntries) * 4)) * SECTOR;
    }

    @Override
    public long metadataEnd() {
        return end;
    }

    @Override
    public void remap(long[] guestOffsets, long[] hostOffsets, int count) throws IOException {
        long g = grainBytes;
        for (int k = 0; k < count; k++) {
            long host = hostOffsets[k];
            long was = entryHost(guestOffsets[k]);
            RelocationUnits.checkRemap(guestOffsets[k], was, host, g, base);
            setEntry(guestOffsets[k], host);
        }
        file.sync(); // the caller's grains, before any entry points to them
        for (int i = dirty.nextSetBit(0); i >= 0; i = dirty.nextSetBit(i + 1)) {
            file.write(ByteBuffer.wrap(table[i]), tableHost[i]);
        }
        dirty.clear();
        file.sync();
    }

    @Override
    public void sync() throws IOException {
        file.sync();
    }
}
