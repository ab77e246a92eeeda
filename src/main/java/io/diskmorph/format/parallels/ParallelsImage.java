package io.diskmorph.format.parallels;

import io.diskmorph.image.AbstractDiskImage;
import io.diskmorph.image.CheckReport;
import io.diskmorph.image.CorruptImageException;
import io.diskmorph.image.ImageFormat;
import io.diskmorph.image.ImageInfo;
import io.diskmorph.image.InvalidRequestException;
import io.diskmorph.image.Mapping;
import io.diskmorph.image.OpenContext;
import io.diskmorph.image.RelocatableImage;
import io.diskmorph.image.RepairMode;
import io.diskmorph.image.UnsupportedFeatureException;
import io.diskmorph.image.cache.SyncTracker;
import io.diskmorph.storage.Storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.List;

/**
 * An open Parallels image. Guest cluster i lives at BAT[i] x unit (a
 * sector for the old magic, a cluster for the new one); 0 is unallocated
 * and reads as zeros. A write to a cluster that has none takes a new
 * cluster at the end of the data (qemu's data_end: past every cluster the
 * BAT names), the rest of it zeros, as qemu's allocate_clusters does
 * (without its 128 MiB of preallocation, which its close cuts off again).
 *
 * <p>The inuse field: qemu sets it when it opens an image for writing and
 * clears it on close, and refuses to open an image that has it set for
 * writing ("not closed correctly") until check -r has run. diskmorph sets
 * it, synced, before the session's first write rather than at open (an
 * open that writes nothing leaves the file byte-identical), and clears it
 * on close after the BAT is durable. Order of a new cluster: the header
 * with inuse, sync; the data, sync; the BAT page, sync. A crash leaves an
 * unused cluster at the end (a leak check reports) and the inuse mark.
 */
final class ParallelsImage extends AbstractDiskImage implements RelocatableImage,
        io.diskmorph.image.MetadataRegions {
    private final ParallelsFormat format;
    final ParallelsHeader header;
    private final SyncTracker file;
    final Bat bat;
    private final long cluster;
    /** The file's length as this image knows it (grows with allocations). */
    private long fileLength;
    /** The image was found with inuse set (qemu's header_unclean); cleared by check -r all. */
    private boolean unclean;
    /** This session set inuse in the file, and clears it on close. */
    private boolean markedInUse;
    /** Where the next new cluster goes (qemu's data_end), -1 before the session's first write. */
    private long dataEnd = -1;

    private ParallelsImage(ParallelsFormat format, Storage storage, OpenContext context, ParallelsHeader header,
                           long fileLength) {
        super(storage, context);
        this.format = format;
        this.header = header;
        this.cluster = header.clusterSize();
        this.fileLength = fileLength;
        this.file = new SyncTracker(storage);
        this.bat = new Bat(file, header.batEntries, file::flush);
        this.unclean = header.inUse;
    }

    static ParallelsImage open(ParallelsFormat format, Storage storage, OpenContext context) throws IOException {
        long length = storage.size();
        ParallelsHeader h = ParallelsHeader.read(
                storage.readBytes(0, (int) Math.min(ParallelsHeader.BYTES, length)), length);
        ParallelsImage img = new ParallelsImage(format, storage, context, h, length);
        if (h.inUse && !img.isReadOnly() && !context.forCheck()) {
            throw new CorruptImageException("Parallels header", ParallelsHeader.OFF_INUSE, "parallels: Image was not "
                    + "closed correctly; cannot be opened read/write (run 'diskmorph check -r all' first)");
        }
        return img;
    }

    @Override
    public ImageFormat format() {
        return format;
    }

    @Override
    public long virtualSize() {
        return header.virtualSize();
    }

    @Override
    public long clusterSize() {
        return cluster;
    }

    @Override
    public java.util.Map<String, String> creationOptions() {
        return java.util.Map.of("cluster_size", Long.toString(cluster));
    }

    /** An image that was not closed cleanly may have a BAT that does not describe its data yet. */
    @Override
    public String notInPlaceSource() {
        return unclean ? "the Parallels image was not closed correctly (its inuse flag is set): run 'diskmorph "
                + "check -r all' first" : null;
    }

    // ---- lookups --------------------------------------------------------------------------

    /** Guest bytes of cluster {@code index} (the last cluster may be partial). */
    long clusterBytes(long index) {
        return Math.min(cluster, virtualSize() - index * cluster);
    }

    /**
     * Host offset of a BAT entry's cluster, checked: it lies past the BAT and
     * its guest bytes inside the file (qemu checks neither when it reads: it
     * reads the header or zeros).
     */
    long hostCluster(long index, long entry) throws CorruptImageException {
        long host = entry * header.entryUnit();
        if (host < header.batEnd()) {
            throw new CorruptImageException("Parallels BAT", batEntryOffset(index), String.format("cluster %d at host "
                    + "offset 0x%x lies over the header and BAT (which end at 0x%x)", index, host, header.batEnd()));
        }
        if (host + clusterBytes(index) > fileLength) {
            throw new CorruptImageException("Parallels BAT", batEntryOffset(index), String.format("cluster %d at host "
                    + "offset 0x%x lies past the end of the file (%d bytes)", index, host, fileLength));
        }
        return host;
    }

    static long batEntryOffset(long index) {
        return ParallelsHeader.BYTES + 4 * index;
    }

    /**
     * A run of clusters of one kind from {@code guestOffset}: unallocated, or
     * allocated clusters that follow each other on the host (qemu's
     * block_status merges the same). Answers stay within one BAT page.
     */
    @Override
    public Mapping mapping(long guestOffset, long maxLength) throws IOException {
        if (guestOffset < 0 || guestOffset >= virtualSize() || maxLength <= 0) {
            throw new InvalidRequestException(String.format("mapping request at 0x%x+0x%x is outside the virtual "
                    + "disk (size %d)", guestOffset, maxLength, virtualSize()));
        }
        long index = guestOffset / cluster;
        long inCluster = guestOffset % cluster;
        long len = Math.min(maxLength, virtualSize() - guestOffset);
        long wanted = Math.min(Math.ceilDiv(inCluster + len, cluster), bat.entriesInPage(index));
        long first = bat.get(index);
        long host = first == 0 ? 0 : hostCluster(index, first);
        long n = 1;
        while (n < wanted) {
            long e = bat.get(index + n);
            if (first == 0 ? e != 0 : e == 0 || e * header.entryUnit() != host + n * cluster) {
                break;
            }
            if (first != 0) {
                hostCluster(index + n, e);
            }
            n++;
        }
        len = Math.min(len, n * cluster - inCluster);
        return first == 0 ? new Mapping.Unallocated(len) : new Mapping.Data(len, host + inCluster);
    }

    // ---- writes ---------------------------------------------------------------------------

    @Override
    public void write(ByteBuffer src, long guestOffset) throws IOException {
        checkWritable();
        checkRange(guestOffset, src.remaining());
        if (!src.hasRemaining()) {
            return;
        }
        markInUse();
        long pos = guestOffset;
        ByteBuffer buf = src.duplicate();
        while (buf.hasRemaining()) {
            long index = pos / cluster;
            long inCluster = pos % cluster;
            int n = (int) Math.min(buf.remaining(), cluster - inCluster);
            ByteBuffer piece = buf.slice(buf.position(), n);
            long e = bat.get(index);
            if (e != 0) {
                file.write(piece, hostCluster(index, e) + inCluster);
            } else {
                allocate(index, piece, inCluster);
            }
            buf.position(buf.position() + n);
            pos += n;
        }
        src.position(src.limit());
    }

    /**
     * Before the session's first write: refuses what qemu would write
     * wrongly, then sets inuse in the file, synced (qemu does so at open).
     */
    private void markInUse() throws IOException {
        if (markedInUse) {
            return;
        }
        if (unclean) {
            throw new CorruptImageException("Parallels header", ParallelsHeader.OFF_INUSE, "parallels: Image was not "
                    + "closed correctly; cannot be written (run 'diskmorph check -r all' first)");
        }
        if (header.extOff != 0) {
            // qemu ignores the extension when writing ("Format Extension ignored in RW mode"): its cluster lies
            // past the data, where the next new cluster would go, and its bitmaps would go stale
            throw new UnsupportedFeatureException("Parallels images with a format extension (dirty bitmaps) are not "
                    + "written: the extension would be overwritten or go stale");
        }
        if (dataEnd < 0) {
            dataEnd = findDataEnd(); // checks every entry: a damaged BAT is refused before the first byte changes
        }
        header.inUse = true;
        storage.write(header.encode(), 0);
        storage.sync();
        markedInUse = true;
    }

    /** A new cluster for guest cluster {@code index} at the end of the data, zeros around {@code piece}. */
    private void allocate(long index, ByteBuffer piece, long inCluster) throws IOException {
        if (fileLength > dataEnd) {
            // no cluster lies there (qemu's close cuts the same tail): new clusters start at the end of the file
            storage.truncate(dataEnd);
            fileLength = dataEnd;
        }
        long host = dataEnd;
        if (host / header.entryUnit() > 0xffffffffL) {
            throw new UnsupportedFeatureException(String.format("the Parallels image is full: a cluster at host "
                    + "offset 0x%x cannot be named by a 32-bit BAT entry", host));
        }
        storage.truncate(host + cluster); // zeros around the piece, sparse, as qemu's write_zeroes
        file.write(piece, host + inCluster);
        fileLength = host + cluster;
        dataEnd = host + cluster;
        bat.set(index, host / header.entryUnit());
    }

    /**
     * qemu's data_end: past the data offset and every cluster the BAT names,
     * rounded up to what an entry can name. Every entry is checked first (a
     * damaged one would make the new cluster overlap another).
     */
    private long findDataEnd() throws IOException {
        long end = header.dataStart();
        for (long i = 0; i < header.batEntries; i++) {
            long e = bat.get(i);
            if (e != 0) {
                long host = hostCluster(i, e);
                end = Math.max(end, host + cluster);
            }
        }
        long unit = header.entryUnit();
        return Math.ceilDiv(end, unit) * unit;
    }

    /**
     * Zero writes: unallocated clusters already read as zeros (no backing
     * file) and stay so; allocated ones get zeros written in place (the BAT
     * cannot free a cluster without leaving a gap qemu's check calls
     * nothing, so none is given back).
     */
    @Override
    public void writeZeroes(long guestOffset, long length, boolean mayUnmap) throws IOException {
        checkWritable();
        checkRange(guestOffset, length);
        long pos = guestOffset;
        long end = guestOffset + length;
        ByteBuffer zeros = null;
        while (pos < end) {
            long index = pos / cluster;
            long inCluster = pos % cluster;
            long n = Math.min(end - pos, cluster - inCluster);
            long e = bat.get(index);
            if (e != 0) {
                markInUse();
                long host = hostCluster(index, e) + inCluster;
                if (zeros == null) {
                    zeros = ByteBuffer.allocate((int) Math.min(1 << 20, length));
                }
                for (long done = 0; done < n; ) {
                    int k = (int) Math.min(zeros.capacity(), n - done);
                    file.write(zeros.clear().limit(k), host + done);
                    done += k;
                }
            }
            pos += n;
        }
    }

    @Override
    public void flush() throws IOException {
        if (isReadOnly()) {
            return;
        }
        bat.flush();
        file.flush();
    }

    /** Data and BAT durable, then inuse cleared, synced. */
    @Override
    protected void closeImage() throws IOException {
        flush();
        if (markedInUse) {
            clearInUse();
        }
    }

    private void clearInUse() throws IOException {
        header.inUse = false;
        storage.write(header.encode(), 0);
        storage.sync();
        markedInUse = false;
    }

    // ---- info, check ----------------------------------------------------------------------

    /** qemu 7.2 shows no cluster size, dirty flag or format-specific data for parallels (no get_info). */
    @Override
    public ImageInfo info() throws IOException {
        return new ImageInfo(storage.name(), ParallelsFormat.NAME, virtualSize(), storage.allocatedBytes(), 0,
                false, false, null, null, null, null, List.of(), false);
    }

    /**
     * qemu-img check for parallels: one pass (fixing what -r asks), then,
     * when something was fixed, a second pass that describes the image as it
     * is now. Any -r opens the image for writing, which in qemu clears inuse
     * on close even when only leaks were to be repaired: so here too (the
     * report of -r leaks still counts the unclean image, as qemu's does).
     * A leak qemu counts inside the BAT (its image end offset ignores the
     * BAT) is not cut and stays reported, where qemu reports it fixed.
     * Progress: "tables" (the BAT walked), "repair" (announced), "tables" again after a repair.
     */
    @Override
    public CheckReport check(RepairMode repair, io.diskmorph.image.PhaseProgress progress) throws IOException {
        boolean fix = repair != RepairMode.NONE;
        if (fix) {
            checkWritable();
        }
        flush();
        ParallelsChecker.Result first = ParallelsChecker.run(this, fileLength, unclean, repair, progress);
        CheckReport result = first.report();
        if (!fix) {
            return result;
        }
        boolean changed = false;
        progress.update("repair", 0, 0);
        if (first.batChanged()) {
            bat.flush();
            changed = true;
        }
        if (first.truncateTo() >= 0) {
            // qemu cuts at its image end offset even where that lies inside the BAT (an empty image whose BAT
            // spans several clusters: a phantom leak), and its close puts the length back; the BAT is never cut
            // here, and what could not be cut stays counted (the report describes the file as it is)
            long cut = Math.max(first.truncateTo(), header.dataStart());
            if (cut < fileLength) {
                storage.truncate(cut);
                storage.sync();
                fileLength = cut;
                changed = true;
            }
        }
        if (repair.all() && unclean) {
            unclean = false;
        }
        if (header.inUse) {
            clearInUse();
            changed = true;
        }
        if (result.corruptionsFixed > 0 || result.leaksFixed > 0) {
            CheckReport now = ParallelsChecker.run(this, fileLength, unclean, RepairMode.NONE, progress).report();
            now.corruptionsFixed = result.corruptionsFixed;
            now.leaksFixed = Math.max(0, result.leaksFixed - now.leaks);
            now.messages.clear();
            now.messages.addAll(result.messages);
            result = now;
        }
        result.repaired = changed;
        return result;
    }

    // ---- relocation (in place to raw) ----

    @Override
    public long unitSize() {
        return cluster;
    }

    @Override
    public String notRelocatable() {
        return ParallelsRelocation.whyNot(this);
    }

    /** The BAT stays where it is, in the header unit: nothing is written past the data. */
    @Override
    public long relocatedMetadataBytes(long metadataOffset) {
        return 0;
    }

    @Override
    public Relocation relocate(Storage writable, long metadataOffset) throws IOException {
        return ParallelsRelocation.start(this, writable, metadataOffset);
    }

    // ---- the picture of the file (diskmorph layout) ----

    /**
     * The header, the BAT right behind it, and the format extension's
     * cluster when the header names one (qemu reads one cluster there; the
     * dirty bitmaps' data clusters it points to are not named).
     */
    @Override
    public void metadataRegions(Sink sink) throws IOException {
        sink.region("header", 0, ParallelsHeader.BYTES);
        sink.region("BAT", ParallelsHeader.BYTES, header.batEnd() - ParallelsHeader.BYTES);
        // a damaged offset (inside the BAT, or past 2^63) names nothing rather than a byte twice
        if (header.extOff > 0 && header.extOff < Long.MAX_VALUE / ParallelsHeader.SECTOR / 2
                && header.extOff * ParallelsHeader.SECTOR >= header.batEnd()) {
            sink.region("format extension", header.extOff * ParallelsHeader.SECTOR, cluster);
        }
    }
}
