package io.diskmorph.copy;

import io.diskmorph.image.DiskImage;
import io.diskmorph.image.Mapping;
import io.diskmorph.storage.FileStorage;
import io.diskmorph.storage.MappedRegion;
import io.diskmorph.storage.Storage;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayDeque;
import java.util.IdentityHashMap;
import java.util.Map;

/**
 * Read-only memory mappings of the source's data files, so that guest data
 * stored uncompressed and contiguously goes from the source's page cache to
 * the target's in one copy (the target write) instead of two (a read into a
 * buffer, then the write). Only reads are mapped; every write still goes
 * through {@link Storage}. Ranges that are not one plain data extent of a
 * regular file (compressed clusters, pieces from several layers, data past
 * the end of the file) are not mapped: the caller reads them the usual way.
 *
 * <p>Files are mapped through their own storage's descriptor (a second
 * descriptor, once closed, would drop the record locks the read-only open
 * holds), in 64 MiB windows, a few per file. Every mapped page a copy
 * touches counts in its resident memory while it is mapped (4 windows of
 * 64 MiB kept until they went made a 1.5 GiB copy peak at 297 MiB
 * resident), so released ranges drop their pages
 * ({@link MappedRegion#dropPages}: madvise MADV_DONTNEED, which leaves the
 * page cache as it is): what stays resident is about the chunks in flight.
 * Pages are dropped in 2 MiB blocks of the address space once no range in
 * flight touches the block: the kernel maps a large page-cache folio of the
 * file with one PMD entry, and dropping part of such a mapping removes all
 * of it, the neighbouring chunk's pages too; the writer then copied from
 * unmapped pages, and every such write came back short, zeroed what it had
 * begun and was retried (about 800 times per 1.8 GB copied, 10-15 % of the
 * writer's time). A window is unmapped once the reader has dropped it and
 * every range taken from it has been released (without the JNI shim,
 * closing its shared arena stops every Java thread for a handshake, which
 * 4 MiB windows paid 568 times per 2.2 GB copied; 64 MiB: 57). The reader
 * calls {@link #map} and releases the ranges the writer has written
 * ({@link Range#release}).
 */
final class MappedSource implements AutoCloseable {
    private static final long WINDOW = 64L << 20;
    private static final int WINDOWS_PER_FILE = 4;
    private static final long PAGE = 4096;

    /** A mapped range handed to the writer; release it once written. */
    static final class Range {
        /** The range's bytes, read-only, in the platform's byte order. */
        final ByteBuffer buffer;
        private final Window window;
        private final long from;

        Range(ByteBuffer buffer, Window window, long from) {
            this.buffer = buffer;
            this.window = window;
            this.from = from;
        }

        /** The address of the range's first byte. */
        long address() {
            return window.base + from;
        }

        void release() {
            window.release(from, buffer.capacity());
        }
    }

    /** Blocks of the address space whose pages are dropped together: a PMD's reach. */
    static final long BLOCK = 2L << 20;

    private static final class Window {
        final MappedRegion region;
        final long start;
        final long length;
        /** The address of the window's first byte, and per 2 MiB block of addresses the ranges in flight in it. */
        private final long base;
        private final int[] inFlight;
        private int users;
        private boolean retired;

        Window(FileStorage file, long start, long length) throws IOException {
            this.start = start;
            this.length = length;
            this.region = file.mapReadOnly(start, length);
            this.base = region.address();
            this.inFlight = new int[(int) (block(base + length - 1) - block(base) + 1)];
        }

        private long block(long address) {
            return address / BLOCK;
        }

        /** A range [from, from + length) of the window goes to the writer. */
        synchronized void acquire(long from, long rangeLength) {
            users++;
            for (long b = block(base + from); b <= block(base + from + rangeLength - 1); b++) {
                inFlight[(int) (b - block(base))]++;
            }
        }

        /**
         * The range was written: blocks no other range in flight touches
         * leave the resident set now, not when the window goes (the page
         * cache keeps them).
         */
        synchronized void release(long from, long rangeLength) {
            users--;
            for (long b = block(base + from); b <= block(base + from + rangeLength - 1); b++) {
                if (--inFlight[(int) (b - block(base))] == 0) {
                    long lo = Math.max(0, b * BLOCK - base);
                    long hi = Math.min(length, (b + 1) * BLOCK - base);
                    try {
                        region.dropPages(lo, hi - lo);
                    } catch (IOException e) {
                        throw new UncheckedIOException(e);
                    }
                }
            }
            closeIfDone();
        }

        synchronized void retire() {
            retired = true;
            closeIfDone();
        }

        private void closeIfDone() {
            if (retired && users == 0) {
                try {
                    region.unmap();
                } catch (IOException e) {
                    throw new UncheckedIOException(e);
                }
            }
        }

        boolean covers(long host, long length) {
            return host >= start && host + length <= start + this.length;
        }
    }

    /** One mapped file: its channel and its most recently used windows (a fragmented image jumps around). */
    private static final class MappedFile {
        final ArrayDeque<Window> windows = new ArrayDeque<>();
    }

    private final DiskImage source;
    private final Map<Storage, MappedFile> files = new IdentityHashMap<>();
    // the top layer's last mappable data answer: the chunks of one extent are cut from it without asking the
    // driver again (a raw source answers with two lseeks and three fstats per question); the source is
    // opened read-only and locked against writers, so its answers hold for the whole copy
    private long extentGuest = -1;
    private long extentLength;
    private long extentHost;
    private FileStorage extentFile;

    MappedSource(DiskImage source) {
        this.source = source;
    }

    /**
     * The guest range [pos, pos + length) as a mapped range, or null when it
     * is not one uncompressed data extent of a regular file in the chain.
     * When only a prefix of it is one such extent (a qcow2 run of guest data
     * that continues past an L2 table in the file, say), the range is that
     * prefix rounded down to {@code unit} bytes, if that leaves any: the
     * caller copies the rest as the next range, which would otherwise have
     * been read, all of it, into a buffer of its own. {@code runEnd}: where
     * the copy's current run of data ends (the next chunks are likely cut
     * from the same extent).
     */
    Range map(long pos, int length, int unit, long runEnd) throws IOException {
        if (pos >= extentGuest && pos < extentGuest + extentLength) {
            int n = prefix(length, extentGuest + extentLength - pos, unit);
            return n > 0 ? slice(extentFile, extentHost + (pos - extentGuest), n) : null;
        }
        DiskImage layer = source;
        int n = length;
        while (true) {
            // the whole rest of the copy's run is asked for, so that the answer serves the chunks after this one
            long ask = layer == source ? Math.max(n, Math.min(runEnd, source.virtualSize()) - pos) : n;
            Mapping m = layer.mapping(pos, ask);
            n = prefix(n, m.length(), unit);
            if (n == 0) {
                return null;
            }
            if (m instanceof Mapping.Data d) {
                if (layer.mapReportsHostHolesAsZero(d) || !(layer.dataStorage(d) instanceof FileStorage fs)) {
                    return null;
                }
                if (layer == source) {
                    extentGuest = pos;
                    extentLength = d.length();
                    extentHost = d.hostOffset();
                    extentFile = fs;
                }
                return slice(fs, d.hostOffset(), n);
            }
            if (!(m instanceof Mapping.Unallocated)) {
                return null;
            }
            DiskImage below = layer.backing();
            if (below == null || pos + n > below.virtualSize()) {
                return null;
            }
            layer.checkBackingReadable(); // its data would come from below without the layer's read
            layer = below;
        }
    }

    /** {@code length}, or the {@code available} bytes rounded down to {@code unit} when fewer; 0: none. */
    private static int prefix(int length, long available, int unit) {
        return available >= length ? length : (int) (available - available % unit);
    }

    private Range slice(FileStorage fs, long host, int length) throws IOException {
        MappedFile f = files.get(fs);
        if (f == null) {
            f = new MappedFile();
            files.put(fs, f);
        }
        Window w = null;
        for (Window c : f.windows) {
            if (c.covers(host, length)) {
                w = c;
                break;
            }
        }
        if (w == null) {
            // the file's size is asked once per window, not per chunk (a window lies inside the file)
            long fileSize = fs.size();
            if (host + length > fileSize) {
                return null; // data past the end of the file reads as zeros: not mappable
            }
            if (f.windows.size() == WINDOWS_PER_FILE) {
                f.windows.removeLast().retire();
            }
            long start = host & -PAGE;
            long end = Math.min(fileSize, Math.max(start + WINDOW, host + length));
            w = new Window(fs, start, end - start);
        } else {
            f.windows.remove(w);
        }
        f.windows.addFirst(w);
        w.acquire(host - w.start, length);
        ByteBuffer b = w.region.buffer().slice((int) (host - w.start), length).order(ByteOrder.nativeOrder());
        return new Range(b, w, host - w.start);
    }

    /** Unmaps the windows the writer no longer uses (any still in use go when released). */
    @Override
    public void close() {
        for (MappedFile f : files.values()) {
            for (Window w : f.windows) {
                w.retire();
            }
            f.windows.clear();
        }
        files.clear();
    }
}
