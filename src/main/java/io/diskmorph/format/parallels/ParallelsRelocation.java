package io.diskmorph.format.parallels;

import io.diskmorph.image.RelocatableImage;
import io.diskmorph.image.RelocationTable;
import io.diskmorph.image.RelocationUnits;
import io.diskmorph.image.UnsupportedFeatureException;
import io.diskmorph.storage.Storage;

import java.io.IOException;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;

/**
 * Moving a Parallels image's clusters inside its file, the image valid
 * after every durable step (the driver's side of the in-place conversion
 * to raw, {@link RelocatableImage}).
 *
 * <p>The BAT has no pointer in the header: it always follows it. So it is
 * not relocated; the image qualifies when header and BAT lie in the first
 * cluster (qemu-img's layout at its 1 MiB default for disks up to 256 GiB),
 * which is the header unit the conversion's last, journaled step
 * overwrites. {@link #start} writes nothing: the BAT stays in memory (at
 * most 64 MiB) and {@link #remap} syncs the caller's data, writes the BAT
 * pages that changed (4 KiB each; an entry never crosses a sector, so a
 * torn page leaves each entry old or new), then syncs. The old places are
 * free once the new entries are durable (qemu's check counts nothing below
 * the last cluster as a leak). inuse is not set: each step leaves the BAT
 * describing the data, which is what its absence promises. Images that
 * do not qualify say why ({@link #whyNot}) and go through qcow2
 * (convert.ToRawVia).
 */
final class ParallelsRelocation implements RelocatableImage.Relocation {
    private static final VarHandle LE32 = MethodHandles.byteArrayViewVarHandle(int[].class, ByteOrder.LITTLE_ENDIAN);
    /** The largest BAT held in memory: 16 Mi entries. */
    private static final long MAX_BAT_BYTES = 64L << 20;

    private final Storage file;
    private final long cluster;
    private final long base;
    private final RelocationTable bat;

    private ParallelsRelocation(Storage file, ParallelsHeader h, long base) {
        this.file = file;
        this.cluster = h.clusterSize();
        this.base = base;
        this.bat = new RelocationTable(ParallelsHeader.BYTES, Math.toIntExact(4 * h.batEntries), 4096);
    }

    static String whyNot(ParallelsImage img) {
        ParallelsHeader h = img.header;
        if (img.notInPlaceSource() != null) {
            return img.notInPlaceSource();
        }
        if (!h.extMagic) {
            return "the image has the old magic (WithoutFreeSpace: BAT entries count sectors, not clusters)";
        }
        if (h.extOff != 0) {
            return "the image has a format extension (dirty bitmaps), which moving the data would overwrite";
        }
        if (h.batEnd() > h.clusterSize()) {
            return "the Parallels BAT spans " + Math.ceilDiv(h.batEnd(), h.clusterSize()) + " clusters, whose guest "
                    + "data could not be moved to their offsets (the BAT cannot move: it follows the header)";
        }
        if (4 * h.batEntries > MAX_BAT_BYTES) {
            return "the Parallels BAT has " + h.batEntries + " entries, more than a relocation holds in memory";
        }
        return null;
    }

    static ParallelsRelocation start(ParallelsImage img, Storage file, long base) throws IOException {
        String why = whyNot(img);
        if (why != null) {
            throw new UnsupportedFeatureException(why);
        }
        ParallelsHeader h = img.header;
        if (base % h.clusterSize() != 0 || base / h.clusterSize() > 0xffffffffL) {
            throw new UnsupportedFeatureException("the spare area at " + base + " cannot be named by a 32-bit "
                    + "Parallels BAT entry");
        }
        ParallelsRelocation r = new ParallelsRelocation(file, h, base);
        RelocationUnits.forEachData(img, h.clusterSize(), base, "cluster", r::setEntry);
        return r;
    }

    private void setEntry(long guest, long host) {
        int at = (int) (guest / cluster) * 4;
        LE32.set(bat.bytes(), at, (int) (host / cluster));
        bat.changed(at);
    }

    private long entryHost(long guest) {
        return Integer.toUnsignedLong((int) LE32.get(bat.bytes(), (int) (guest / cluster) * 4)) * cluster;
    }

    /** Nothing is written past the data: the BAT stays in the header unit. */
    @Override
    public long metadataEnd() {
        return base;
    }

    @Override
    public void remap(long[] guestOffsets, long[] hostOffsets, int count) throws IOException {
        for (int k = 0; k < count; k++) {
            long host = hostOffsets[k];
            RelocationUnits.checkRemap(guestOffsets[k], entryHost(guestOffsets[k]), host, cluster, base);
            if (host / cluster > 0xffffffffL) {
                throw new IllegalStateException("remap past what a BAT entry names: " + host);
            }
            setEntry(guestOffsets[k], host);
        }
        file.sync(); // the caller's data, before any entry points to it
        bat.writeDirty(file);
        file.sync();
    }

    @Override
    public void sync() throws IOException {
        file.sync();
    }
}
