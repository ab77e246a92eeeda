package io.diskmorph.layout;

import io.diskmorph.image.DiskImage;
import io.diskmorph.image.Mapping;
import io.diskmorph.image.MetadataRegions;
import io.diskmorph.storage.Storage;

import java.io.IOException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * What each part of an image's host file holds, in bins of equal size (a
 * 4 TiB sparse file is as many bins as a small one): bytes of guest data
 * (with the mean guest offset, so fragmentation shows), of each kind of
 * metadata the driver reports ({@link MetadataRegions}), of holes of the
 * file, and of allocated space nothing references. The data and metadata
 * bytes are exact; in a bin where data lies in holes of the file (a
 * preallocated image) the holes counted are what is left.
 */
public final class HostLayout {
    /** Bins for a file: at most this many, each at least one sector. */
    public static final int MAX_BINS = 16384;
    public static final String DATA = "guest data";
    public static final String COMPRESSED = MetadataRegions.COMPRESSED_DATA;
    public static final String HOLE = "hole";
    public static final String UNREFERENCED = "unreferenced";

    final String file;
    final String format;
    final long fileLength;
    final long virtualSize;
    final long binBytes;
    final int bins;
    /** Kinds in drawing order: data, compressed, metadata kinds as reported, unreferenced, hole. */
    final List<String> kinds = new ArrayList<>();
    /** bytes[kind][bin]. */
    final List<long[]> bytes = new ArrayList<>();
    /** Sum over data bytes in the bin of their guest offset, in units of the bin (for the mean). */
    final double[] guestSum;
    final Map<String, Long> totals = new LinkedHashMap<>();

    private final long[] holes;

    private HostLayout(String file, String format, long fileLength, long virtualSize, long binBytes) {
        this.file = file;
        this.format = format;
        this.fileLength = fileLength;
        this.virtualSize = virtualSize;
        this.binBytes = binBytes;
        this.bins = (int) Math.max(1, Math.ceilDiv(fileLength, binBytes));
        this.guestSum = new double[bins];
        this.holes = new long[bins];
        kind(DATA);
        kind(COMPRESSED);
    }

    /** The bin size for a file of {@code fileLength} bytes in at most {@code maxBins} bins: whole sectors. */
    public static long binBytesFor(long fileLength, int maxBins) {
        long sectors = Math.max(1, Math.ceilDiv(fileLength, 512));
        return Math.ceilDiv(sectors, maxBins) * 512;
    }

    /**
     * A layout told region by region (a planned file: the dry run of an
     * in-place conversion). Holes given are the file's; bytes that data or
     * metadata cover are not counted as holes.
     */
    public static final class Builder {
        private final HostLayout l;
        private boolean built;

        public Builder(String file, String format, long fileLength, long virtualSize, long binBytes) {
            l = new HostLayout(file, format, fileLength, virtualSize, binBytes);
        }

        public Builder data(long host, long length, long guest) {
            l.add(0, host, length, guest);
            return this;
        }

        public Builder compressed(long host, long length) {
            l.add(1, host, length, -1);
            return this;
        }

        public Builder metadata(String kind, long host, long length) {
            l.add(l.kind(kind), host, length, -1);
            return this;
        }

        public Builder hole(long host, long length) {
            l.spread(l.holes, host, Math.min(length, l.fileLength - host));
            return this;
        }

        /** Holes of {@code file} below this layout's file length. */
        public Builder holesOf(Storage file) throws IOException {
            long end = Math.min(l.fileLength, file.size());
            for (long at = file.nextHole(0); at < end; ) {
                long to = Math.min(end, file.nextData(at));
                hole(at, to - at);
                if (to >= end) {
                    break;
                }
                at = file.nextHole(to);
            }
            if (end < l.fileLength) {
                hole(end, l.fileLength - end); // a file that grows: past the old end nothing is written yet
            }
            return this;
        }

        public HostLayout build() {
            if (built) {
                throw new IllegalStateException("built already");
            }
            built = true;
            l.finish();
            return l;
        }
    }

    /** The layout of {@code img}'s own file (data in other files, a VMDK's extents, is not drawn). */
    public static HostLayout of(DiskImage img, String displayName) throws IOException {
        return of(img, displayName, binBytesFor(img.storage().size(), MAX_BINS));
    }

    /** The layout of {@code img}'s own file in bins of {@code binBytes} (two pictures side by side share it). */
    public static HostLayout of(DiskImage img, String displayName, long binBytes) throws IOException {
        Storage file = img.storage();
        Builder b = new Builder(displayName, img.format().name(), file.size(), img.virtualSize(), binBytes);
        b.l.survey(img, file);
        b.holesOf(file);
        return b.build();
    }

    private int kind(String name) {
        int k = kinds.indexOf(name);
        if (k < 0) {
            kinds.add(name);
            bytes.add(new long[bins]);
            k = kinds.size() - 1;
        }
        return k;
    }

    private void survey(DiskImage img, Storage file) throws IOException {
        long v = img.virtualSize();
        long lastCompressed = -1;
        int data = kind(DATA);
        int compressed = kind(COMPRESSED);
        boolean compressedFromDriver = img instanceof MetadataRegions r && r.reportsCompressedData();
        for (long pos = 0; pos < v; ) {
            Mapping m = img.mapping(pos, v - pos);
            if (m instanceof Mapping.Data d && (d.file() == null || d.file() == file)) {
                add(data, d.hostOffset(), d.length(), pos);
            } else if (m instanceof Mapping.Compressed c && c.hostOffset() != lastCompressed
                    && !compressedFromDriver) {
                lastCompressed = c.hostOffset();
                add(compressed, c.hostOffset(), c.compressedLength(), -1);
            }
            pos += m.length();
        }
        if (img instanceof MetadataRegions r) {
            r.metadataRegions((kind, host, length) -> add(kind(kind), host, length, -1));
        }
    }

    private void finish() {
        int unreferenced = kind(UNREFERENCED);
        int hole = kind(HOLE);
        for (int b = 0; b < bins; b++) {
            long length = Math.min(binBytes, fileLength - b * binBytes);
            long covered = 0;
            for (int k = 0; k < kinds.size(); k++) {
                if (k != unreferenced && k != hole) {
                    covered += bytes.get(k)[b];
                }
            }
            long free = Math.max(0, length - covered);
            long h = Math.min(free, holes[b]);
            bytes.get(hole)[b] = h;
            bytes.get(unreferenced)[b] = free - h;
        }
        for (int k = 0; k < kinds.size(); k++) {
            long n = 0;
            for (long x : bytes.get(k)) {
                n += x;
            }
            totals.put(kinds.get(k), n);
        }
    }

    /** Counts [host, host + length) clipped to the file into kind {@code k}; guest >= 0 for data. */
    private void add(int k, long host, long length, long guest) {
        long end = Math.min(fileLength, host + length);
        long[] into = bytes.get(k);
        for (long at = Math.max(0, host); at < end; ) {
            int b = (int) (at / binBytes);
            long upTo = Math.min(end, (b + 1) * binBytes);
            into[b] += upTo - at;
            if (guest >= 0) {
                double mid = guest + (at - host) + (upTo - at) / 2.0;
                guestSum[b] += mid * (upTo - at);
            }
            at = upTo;
        }
    }

    private void spread(long[] into, long host, long length) {
        long end = Math.min(fileLength, host + length);
        for (long at = host; at < end; ) {
            int b = (int) (at / binBytes);
            long upTo = Math.min(end, (b + 1) * binBytes);
            into[b] += upTo - at;
            at = upTo;
        }
    }

    /** Mean guest offset of the data in bin {@code b}, as a fraction of the virtual size (0..1). */
    double guestFraction(int b) {
        long d = bytes.get(0)[b];
        return d == 0 || virtualSize == 0 ? 0 : Math.min(1, guestSum[b] / d / virtualSize);
    }

    /** Bytes of each kind in the whole file. */
    public Map<String, Long> totals() {
        return java.util.Collections.unmodifiableMap(totals);
    }

    public long binBytes() {
        return binBytes;
    }

    /** The file's length: the bytes of all kinds together. */
    public long fileLength() {
        return fileLength;
    }

    public long virtualSize() {
        return virtualSize;
    }

    /** The image's format name. */
    public String format() {
        return format;
    }
}
