package io.diskmorph.testing;

import io.diskmorph.image.HostSpace;
import io.diskmorph.storage.Storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.zip.CRC32C;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Host space for a layout builder under test: bump allocation from
 * {@code start} that skips clusters holding kept guest data, as the
 * converter's allocators do. Fails a write over kept data, or outside what
 * was allocated and below {@code start} (the header zone); records every
 * call in {@link #log}; writes through to {@code sink} when there is one.
 */
public final class KeptDataSpace implements HostSpace {
    /** "allocate ..." and "write ..." (offset, length, CRC of the bytes), in call order. */
    public final List<String> log = new ArrayList<>();
    private final Storage sink;
    private final Set<Long> kept;
    private final long cluster;
    private final long start;
    private final TreeMap<Long, Long> allocated = new TreeMap<>();
    private long next;

    /** @param kept host offsets of the kept clusters, each a multiple of {@code cluster} */
    public KeptDataSpace(Storage sink, Set<Long> kept, long cluster, long start) {
        this.sink = sink;
        this.kept = kept;
        this.cluster = cluster;
        this.start = start;
        this.next = start;
    }

    @Override
    public long allocate(long length, long alignment) {
        long off = (next + alignment - 1) & -alignment;
        while (overlapsKept(off, length)) {
            off = (off + cluster + alignment - 1) & -alignment;
        }
        next = off + length;
        allocated.put(off, off + length);
        log.add("allocate " + length + " aligned " + alignment + " at " + off);
        return off;
    }

    private boolean overlapsKept(long off, long length) {
        for (long c = off & -cluster; c < off + length; c += cluster) {
            if (kept.contains(c)) {
                return true;
            }
        }
        return false;
    }

    @Override
    public void write(long hostOffset, ByteBuffer data) throws IOException {
        long end = hostOffset + data.remaining();
        Map.Entry<Long, Long> a = allocated.floorEntry(hostOffset);
        assertTrue(end <= start || a != null && end <= a.getValue(),
                "a builder writes only where it allocated or in its header zone: " + hostOffset + "+"
                        + data.remaining());
        assertFalse(overlapsKept(hostOffset, data.remaining()), "a builder wrote over kept data at " + hostOffset);
        CRC32C crc = new CRC32C();
        crc.update(data.duplicate());
        log.add("write " + hostOffset + "+" + data.remaining() + " crc " + crc.getValue());
        if (sink != null) {
            sink.write(data, hostOffset);
        }
    }
}
