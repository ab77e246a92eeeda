package io.diskmorph.format.qcow2;

import io.diskmorph.image.RepairMode;
import io.diskmorph.storage.Storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;

/**
 * What the parts of one check pass share (qemu's bs, res and in-memory
 * refcount table in qcow2_check_refcounts): the image as opened for check,
 * the repair mode, the counters and messages, the reference tally, the file
 * length the check works with, whether anything was written, and the
 * overlap check for repairs' writes.
 */
final class CheckContext {
    /** Table entries read at a time: a 32 MiB L1 table costs one page of memory. */
    static final int PAGE_ENTRIES = 1 << 13;
    /** Per-problem lines kept; the rest are counted. */
    private static final int MAX_MESSAGES = 10_000;
    /** An in-memory refcount table beyond this many clusters is qemu's ENOMEM. */
    static final long MAX_TALLY = Integer.MAX_VALUE;

    /** Builds the overlap check from the structures as they are now. */
    interface OverlapSource {
        MetadataOverlap build() throws IOException;
    }

    final Storage storage;
    final Qcow2Header header;
    final Qcow2Geometry geo;
    final long clusterSize;
    final int clusterBits;
    final boolean fixLeaks;
    final boolean fixErrors;
    final boolean hasDataFile;
    /** qemu's res, for everything but the snapshot table. */
    final CheckCounts res = new CheckCounts();
    /** Every reference counted (qemu's refcount_table). */
    final ReferenceTally refs;
    /** The file length the check works with: grows when a refcount block outside the image is repaired. */
    long fileLength;
    private final long originalLength;
    /** The file was grown (and nothing else written, unless {@link #wrote}). */
    boolean grown;
    boolean wrote;
    /** Where the walks report (check -p); NONE during a repair, which has no measure of its own. */
    io.diskmorph.image.PhaseProgress progress = io.diskmorph.image.PhaseProgress.NONE;

    private final List<String> messages = new ArrayList<>();
    private long messagesDropped;
    private boolean signaled;
    /** A corruption event noticed where qemu signals it only if the walk goes on (refcount lookups). */
    private String pendingSignal;
    private OverlapSource overlapSource;
    private MetadataOverlap overlaps;
    private ByteBuffer pageBuffer;
    private long[] pageWords;

    CheckContext(Storage storage, RepairMode mode, boolean hasDataFile) throws IOException {
        this.storage = storage;
        this.fixLeaks = mode.leaks();
        this.fixErrors = mode.all();
        this.hasDataFile = hasDataFile;
        this.header = Qcow2Header.read(storage, true);
        this.geo = Qcow2Geometry.of(header);
        this.clusterSize = geo.clusterSize;
        this.clusterBits = geo.clusterBits;
        this.refs = new ReferenceTally(geo.refcountBits);
        this.fileLength = storage.size();
        this.originalLength = fileLength;
    }

    // ---- messages ----

    void message(String m) {
        if (messages.size() < MAX_MESSAGES) {
            messages.add(m);
        } else {
            messagesDropped++;
        }
    }

    /** qcow2_signal_corruption, once per image; we never mark the image corrupt ourselves. */
    void signal(String what) {
        if (!signaled) {
            signaled = true;
            pendingSignal = null;
            message("qcow2: Image is corrupt: " + what + "; further non-fatal corruption events will be suppressed");
        }
    }

    /** Remembers the first corruption event of a lookup, signalled by {@link #signalPending}. */
    void signalLater(String what) {
        if (!signaled && pendingSignal == null) {
            pendingSignal = what;
        }
    }

    void signalPending() {
        if (pendingSignal != null) {
            signal(pendingSignal);
        }
    }

    /** The pass's messages, with a line for those not kept. */
    List<String> finishMessages() {
        if (messagesDropped > 0) {
            messages.add("... " + messagesDropped + " more problem lines not shown");
            messagesDropped = 0;
        }
        List<String> copy = List.copyOf(messages);
        messages.clear();
        return copy;
    }

    // ---- references ----

    /** qcow2_inc_refcounts_imrt: one more reference to each cluster of [offset, offset + size). */
    void inc(long offset, long size) throws CheckFailed {
        if (size <= 0) {
            return;
        }
        // a last cluster may be partly past the end of the file, a whole cluster may not (qemu's int64 test)
        if (offset + size - fileLength >= clusterSize) {
            message("ERROR: counting reference for region exceeding the end of the file by one cluster or more: "
                    + "offset 0x" + Long.toHexString(offset) + " size 0x" + Long.toHexString(size));
            res.corruptions++;
            return;
        }
        long start = offset & -clusterSize;
        long last = (offset + size - 1) & -clusterSize;
        for (long at = start; Long.compareUnsigned(at, last) <= 0; at += clusterSize) {
            long k = at >>> clusterBits;
            if (k >= refs.size()) {
                if (k >= MAX_TALLY) {
                    res.checkErrors++;
                    throw new CheckFailed(CheckFailed.ENOMEM);
                }
                refs.ensureSize(k + 1);
            }
            if (!refs.increment(k)) {
                overflow(at);
            }
            if (at == last) {
                break;
            }
        }
    }

    /** A reference the refcount width cannot count any more. */
    void overflow(long at) {
        message("ERROR: overflow cluster offset=0x" + Long.toHexString(at));
        message("Use qemu-img amend to increase the refcount entry width or qemu-img convert to create a "
                + "clean copy if the image cannot be opened for writing");
        res.corruptions++;
    }

    // ---- repairs' writes ----

    /** Where {@link #overlap} takes the structures from. */
    void overlapsFrom(OverlapSource source) {
        this.overlapSource = source;
        this.overlaps = null;
    }

    /** The metadata moved (a rebuilt refcount structure): the overlap check is built again when asked. */
    void metadataMoved() {
        overlaps = null;
    }

    /**
     * The metadata a repair's write of [offset, offset + size) would land on
     * (qemu's overlap check), or null; {@code signal}: report a hit like
     * qemu (once).
     */
    String overlap(int ignore, long offset, long size, boolean signal) throws IOException {
        if (overlaps == null) {
            overlaps = overlapSource.build();
        }
        String hit = overlaps.check(ignore, offset, size);
        if (hit != null && signal) {
            signal("Preventing invalid write on metadata (overlaps with " + hit + ")");
        }
        return hit;
    }

    void writeAndSync(ByteBuffer b, long at) throws IOException {
        storage.write(b, at);
        storage.sync();
        wrote = true;
    }

    /** Grows the file (sparse) to {@code length}; the error text when the file system refuses. */
    String grow(long length) {
        try {
            if (storage.size() < length) {
                storage.truncate(length);
                grown = true;
            }
            fileLength = Math.max(fileLength, length);
            return null;
        } catch (IOException e) {
            String why = e.getMessage() == null ? CheckFailed.EIO : e.getMessage();
            message("Could not resize file: " + why);
            return why;
        }
    }

    /** A failed repair that only grew the file leaves it as long as it was. */
    void undoGrowth() throws IOException {
        if (grown && !wrote) {
            storage.truncate(originalLength);
        }
    }

    // ---- reading tables ----

    /**
     * Whether qemu can read {@code length} bytes at {@code offset}: its block
     * layer refuses requests beyond BDRV_MAX_LENGTH (2^63 - 1 rounded down to
     * 1 GiB) with EIO; anything else past the end of the file reads as zeros.
     */
    static boolean readable(long offset, long length) {
        long max = Long.MAX_VALUE & -(1L << 30);
        return offset >= 0 && length >= 0 && length <= max && offset <= max - length;
    }

    /**
     * {@code count} table entries (at most a page) into a buffer reused by
     * every call. The result is valid until the next call.
     */
    long[] readPage(long offset, int count) throws IOException {
        if (pageBuffer == null) {
            pageBuffer = ByteBuffer.allocate(PAGE_ENTRIES * 8);
            pageWords = new long[PAGE_ENTRIES];
        }
        pageBuffer.clear().limit(count * 8);
        storage.read(pageBuffer, offset);
        pageBuffer.flip().asLongBuffer().get(pageWords, 0, count);
        return pageWords;
    }

    /** {@code count} table entries, read a page at a time (no second copy of a big table as bytes). */
    long[] readLongs(long offset, int count) throws IOException {
        long[] out = new long[count];
        ByteBuffer buf = ByteBuffer.allocate(Math.min(count, PAGE_ENTRIES) * 8);
        for (int done = 0; done < count; ) {
            int n = Math.min(PAGE_ENTRIES, count - done);
            buf.clear().limit(n * 8);
            storage.read(buf, offset + done * 8L);
            buf.flip().asLongBuffer().get(out, done, n);
            done += n;
        }
        return out;
    }

    static long ceilDiv(long a, long b) {
        return a / b + (a % b == 0 ? 0 : 1);
    }

    /** C's %#x: "0x" and hex digits, but plain "0" for zero. */
    static String altHex(long v) {
        return v == 0 ? "0" : "0x" + Long.toHexString(v);
    }
}
