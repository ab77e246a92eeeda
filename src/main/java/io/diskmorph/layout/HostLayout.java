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
    public static final String COMPRESSED = "compressed data";
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

    private HostLayout(String file, String format, long fileLength, long virtualSize, int maxBins) {
        this.file = file;
        this.format = format;
        this.fileLength = fileLength;
        this.virtualSize = virtualSize;
        long sectors = Math.max(1, Math.ceilDiv(fileLength, 512));
        long perBin = Math.ceilDiv(sectors, maxBins);
        this.binBytes = perBin * 512;
        this.bins = (int) Math.max(1, Math.ceilDiv(fileLength, binBytes));
        this.guestSum = new double[bins];
        kind(DATA);
        kind(COMPRESSED);
    }

    /** The layout of {@code img}'s own file (data in other files, a VMDK's extents, is not drawn). */
    public static HostLayout of(DiskImage img, String displayName) throws IOException {
        return of(img, displayName, MAX_BINS);
    }

    static HostLayout of(DiskImage img, String displayName, int maxBins) throws IOException {
        Storage file = img.storage();
        HostLayout l = new HostLayout(displayName, img.format().name(), file.size(), img.virtualSize(), maxBins);
        l.survey(img, file);
        return l;
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
        for (long pos = 0; pos < v; ) {
            Mapping m = img.mapping(pos, v - pos);
            if (m instanceof Mapping.Data d && (d.file() == null || d.file() == file)) {
                add(data, d.hostOffset(), d.length(), pos);
            } else if (m instanceof Mapping.Compressed c && c.hostOffset() != lastCompressed) {
                lastCompressed = c.hostOffset();
                add(compressed, c.hostOffset(), c.compressedLength(), -1);
            }
            pos += m.length();
        }
        if (img instanceof MetadataRegions r) {
            r.metadataRegions((kind, host, length) -> add(kind(kind), host, length, -1));
        }
        int unreferenced = kind(UNREFERENCED);
        int hole = kind(HOLE);
        long[] holes = new long[bins];
        for (long at = file.nextHole(0); at < fileLength; ) {
            long end = Math.min(fileLength, file.nextData(at));
            spread(holes, at, end - at);
            if (end >= fileLength) {
                break;
            }
            at = file.nextHole(end);
        }
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
        long end = host + length;
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
}
