package io.diskmorph.image;

import io.diskmorph.storage.Storage;

import java.io.IOException;
import java.util.NoSuchElementException;

/**
 * Walks the guest address space of a chain the way {@code qemu-img map}
 * does: each range is answered by the first layer that has it allocated
 * (data or zeros); unallocated ranges at the end of the chain read as zeros.
 * Streaming, constant memory; optionally merges adjacent entries with
 * qemu-img's rule.
 */
public final class ChainMap {
    private final DiskImage top;
    private final boolean merge;
    private final long end;
    private long pos;
    private MapEntry pending;

    public ChainMap(DiskImage top, boolean merge) {
        this(top, merge, 0, top.virtualSize());
    }

    public ChainMap(DiskImage top, boolean merge, long start, long end) {
        this.top = top;
        this.merge = merge;
        this.pos = start;
        this.end = end;
    }

    public boolean hasNext() {
        return pending != null || pos < end;
    }

    public MapEntry next() throws IOException {
        MapEntry cur = pending != null ? pending : raw();
        pending = null;
        if (cur == null) {
            throw new NoSuchElementException();
        }
        while (merge && pos < end) {
            MapEntry n = raw();
            if (cur.mergeableWith(n)) {
                cur = cur.merge(n);
            } else {
                pending = n;
                break;
            }
        }
        return cur;
    }

    private MapEntry raw() throws IOException {
        if (pos >= end) {
            return null;
        }
        // ask for the rest of the range, like qemu-img map 7.2: drivers answer up to their own table
        // boundaries, so an empty 4 EiB disk takes a few million queries, not 2^32 of 1 GiB each
        MapEntry e = entryAt(top, pos, end - pos);
        pos += e.length();
        return e;
    }

    /** The entry for the range starting at {@code offset}, at most {@code bytes} long. */
    public static MapEntry entryAt(DiskImage top, long offset, long bytes) throws IOException {
        DiskImage layer = top;
        int depth = 0;
        while (true) {
            Mapping m = layer.mapping(offset, bytes);
            bytes = m.length();
            // instanceof tests, not a pattern switch: its bootstrap spins a class at every start
            if (m instanceof Mapping.Data d) {
                Storage data = layer.dataStorage(d);
                String file = data.name();
                if (layer.mapReportsHostHolesAsZero(d)) {
                    long host = d.hostOffset();
                    long dataAt = host < data.size() ? data.nextData(host) : Long.MAX_VALUE; // past EOF reads as zeros
                    if (dataAt > host) {
                        long len = Math.min(bytes, dataAt - host);
                        return new MapEntry(offset, len, depth, true, true, true, host, file, false);
                    }
                    bytes = Math.min(bytes, data.nextHole(host) - host);
                }
                return new MapEntry(offset, bytes, depth, true, false, true, d.hostOffset(), file, false);
            } else if (m instanceof Mapping.Zero z) {
                return new MapEntry(offset, bytes, depth, true, true, false, z.hostOffset(),
                        z.hasHostOffset() ? layer.dataStorage().name() : null, false);
            } else if (m instanceof Mapping.Compressed) {
                return new MapEntry(offset, bytes, depth, true, false, true, -1, null, true);
            } else if (m instanceof Mapping.Unallocated u) {
                DiskImage b = layer.backing();
                if (b == null || offset >= b.virtualSize()) {
                    return new MapEntry(offset, bytes, depth, false, true, false, u.hostOffset(),
                            u.hasHostOffset() ? layer.dataStorage().name() : null, false);
                }
                bytes = Math.min(bytes, b.virtualSize() - offset);
                layer = b;
                depth++;
            } else {
                throw new IllegalStateException("unknown mapping " + m);
            }
        }
    }
}
