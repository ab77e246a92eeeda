package io.diskmorph.image;

import io.diskmorph.storage.Storage;

import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * Shared part of every driver: guest reads through {@link #mapping}, the
 * lazily opened backing image, zero writes by plain writes, and closing.
 * Drivers answer "where does guest offset X live" and do their own
 * allocation; the generic I/O lives here once.
 */
public abstract class AbstractDiskImage implements DiskImage {
    private static final int ZERO_CHUNK = 1 << 20;
    /** What {@link #fillZero} copies from. */
    private static final byte[] ZEROS = new byte[64 << 10];

    protected final Storage storage;
    protected final OpenContext context;
    protected String backingName;
    protected String backingFmt;
    private DiskImage backing;
    private boolean backingOpened;
    private IOException backingFailure;
    private boolean closed;

    protected AbstractDiskImage(Storage storage, OpenContext context) {
        this.storage = storage;
        this.context = context;
    }

    @Override
    public Storage storage() {
        return storage;
    }

    @Override
    public boolean isReadOnly() {
        return context.readOnly() || storage.isReadOnly();
    }

    @Override
    public String backingFileName() {
        return backingName;
    }

    @Override
    public String backingFormat() {
        return backingFmt;
    }

    @Override
    public DiskImage backing() throws IOException {
        if (backingFailure != null) {
            // a backing file that failed to open stays failed: answering null now would read zeros where
            // the backing file's data should show
            throw backingFailure;
        }
        if (!backingOpened) {
            if (backingName != null && context.backing() != null) {
                try {
                    backing = context.backing().open(context, backingName, backingFmt);
                } catch (IOException e) {
                    backingFailure = e;
                    throw e;
                }
            }
            backingOpened = true;
        }
        return backing;
    }

    /**
     * Decompresses the whole cluster holding a {@link Mapping.Compressed}
     * extent into {@code cluster} (capacity = cluster size). Formats with
     * compressed clusters override this.
     */
    protected void decompressCluster(Mapping.Compressed extent, ByteBuffer cluster) throws IOException {
        throw new UnsupportedFeatureException("format " + format().name() + " has no compressed clusters");
    }

    /**
     * The cluster a compressed extent is decompressed into, kept for the
     * image's next reads: one per read was 40 MB of garbage for a copy of a
     * compressed 4 GiB qcow2, and garbage grows the heap's resident set.
     */
    private ByteBuffer cluster;

    @Override
    public void read(ByteBuffer dst, long guestOffset) throws IOException {
        checkRange(guestOffset, dst.remaining());
        long pos = guestOffset;
        while (dst.hasRemaining()) {
            Mapping m = mapping(pos, dst.remaining());
            int n = (int) Math.min(m.length(), dst.remaining());
            if (n <= 0) {
                throw new IllegalStateException(format().name() + " driver returned an empty mapping at " + pos);
            }
            ByteBuffer part = dst.slice(dst.position(), n);
            // instanceof tests, not a pattern switch: its bootstrap spins a class at every start
            if (m instanceof Mapping.Data d) {
                dataStorage(d).read(part, d.hostOffset());
            } else if (m instanceof Mapping.Zero) {
                fillZero(part);
            } else if (m instanceof Mapping.Unallocated) {
                readBacking(part, pos);
            } else if (m instanceof Mapping.Compressed c) {
                if (cluster == null) {
                    cluster = ByteBuffer.allocate(Math.toIntExact(clusterSize()));
                }
                cluster.clear();
                decompressCluster(c, cluster);
                part.put(cluster.slice(Math.toIntExact(c.offsetInCluster()), n));
            } else {
                throw new IllegalStateException("unknown mapping " + m);
            }
            dst.position(dst.position() + n);
            pos += n;
        }
    }

    /** Reads from the backing chain, zeros where there is none or past its end. */
    protected void readBacking(ByteBuffer part, long guestOffset) throws IOException {
        DiskImage b = backing();
        if (b == null) {
            fillZero(part);
            return;
        }
        long inBacking = Math.max(0, Math.min(part.remaining(), b.virtualSize() - guestOffset));
        if (inBacking > 0) {
            b.read(part.slice(part.position(), (int) inBacking), guestOffset);
        }
        fillZero(part.position(part.position() + (int) inBacking));
    }

    /** Zeros the remaining bytes of {@code b} (its position moves to its limit). */
    public static void fillZero(ByteBuffer b) {
        // bulk copies: a loop of putLong, still interpreted early in a copy, filled the zero edges of
        // partly written qcow2 clusters at 11 % of the writer's time
        while (b.hasRemaining()) {
            b.put(ZEROS, 0, Math.min(b.remaining(), ZEROS.length));
        }
    }

    protected void checkRange(long guestOffset, long length) throws IOException {
        if (guestOffset < 0 || length < 0 || guestOffset > virtualSize() - length) {
            throw new InvalidRequestException(String.format("guest range 0x%x+0x%x is outside the virtual disk (size %d)",
                    guestOffset, length, virtualSize()));
        }
    }

    protected void checkWritable() throws IOException {
        if (isReadOnly()) {
            throw new ImageException(storage.name() + ": image is open read-only");
        }
    }

    /** Fallback: writes real zeros. Drivers with zero markers override. */
    @Override
    public void writeZeroes(long guestOffset, long length, boolean mayUnmap) throws IOException {
        checkRange(guestOffset, length);
        ByteBuffer zeros = ByteBuffer.allocate((int) Math.min(ZERO_CHUNK, Math.max(1, length)));
        for (long done = 0; done < length; ) {
            int n = (int) Math.min(zeros.capacity(), length - done);
            write(zeros.clear().limit(n), guestOffset + done);
            done += n;
        }
    }

    /** Driver-specific part of closing: flush caches (when writable); the storage is closed afterwards. */
    protected abstract void closeImage() throws IOException;

    @Override
    public final void close() throws IOException {
        if (closed) {
            return;
        }
        closed = true;
        IOException failure = null;
        try {
            closeImage();
        } catch (IOException e) {
            failure = e;
        }
        try {
            if (backing != null) {
                backing.close();
            }
        } catch (IOException e) {
            if (failure == null) {
                failure = e;
            }
        }
        try {
            storage.close();
        } catch (IOException e) {
            if (failure == null) {
                failure = e;
            }
        }
        if (failure != null) {
            throw failure;
        }
    }
}
