package io.diskmorph.convert;

import java.util.ArrayList;
import java.util.List;
import java.util.TreeMap;

/**
 * A set of disjoint byte ranges [start, end), merged on insert. Used for the
 * ranges a conversion overwrites inside the original file.
 */
final class ByteRanges {
    private final TreeMap<Long, Long> ranges = new TreeMap<>(); // start -> end

    void add(long start, long end) {
        if (end <= start) {
            return;
        }
        var below = ranges.floorEntry(start);
        if (below != null && below.getValue() >= start) {
            start = below.getKey();
            end = Math.max(end, below.getValue());
        }
        var next = ranges.ceilingEntry(start);
        while (next != null && next.getKey() <= end) {
            end = Math.max(end, next.getValue());
            ranges.remove(next.getKey());
            next = ranges.ceilingEntry(start);
        }
        ranges.put(start, end);
    }

    /** True when [start, end) lies entirely inside one range. */
    boolean covers(long start, long end) {
        if (end <= start) {
            return true;
        }
        var e = ranges.floorEntry(start);
        return e != null && e.getValue() >= end;
    }

    /** The ranges clipped to [0, limit), as {start, end} pairs in order. */
    List<long[]> clippedTo(long limit) {
        List<long[]> out = new ArrayList<>();
        for (var e : ranges.entrySet()) {
            if (e.getKey() >= limit) {
                break;
            }
            out.add(new long[]{e.getKey(), Math.min(e.getValue(), limit)});
        }
        return out;
    }

    long totalBytes(long limit) {
        long n = 0;
        for (long[] r : clippedTo(limit)) {
            n += r[1] - r[0];
        }
        return n;
    }

    int size() {
        return ranges.size();
    }
}
