package io.diskmorph.storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.Arrays;

/**
 * An in-memory {@link Storage} for tests, fuzzing and small scratch images.
 * Sparse by 4 KiB pages: pages never written are holes. Bounded by a cap so a
 * hostile size request fails with an IOException instead of exhausting heap.
 */
public final class MemoryStorage implements Storage {
    public static final int PAGE = 4096;
    private static final long DEFAULT_CAP = 1L << 30;

    private final String name;
    private final boolean readOnly;
    private final long cap;
    private byte[][] pages = new byte[16][];
    private long size;

    public MemoryStorage(String name) {
        this(name, DEFAULT_CAP);
    }

    public MemoryStorage(String name, long cap) {
        this.name = name;
        this.readOnly = false;
        this.cap = cap;
    }

    private MemoryStorage(MemoryStorage from, boolean readOnly) {
        this.name = from.name;
        this.readOnly = readOnly;
        this.cap = from.cap;
        this.size = from.size;
        this.pages = new byte[from.pages.length][];
        for (int i = 0; i < from.pages.length; i++) {
            if (from.pages[i] != null) {
                pages[i] = from.pages[i].clone();
            }
        }
    }

    /** A storage holding a copy of {@code bytes}. */
    public static MemoryStorage of(String name, byte[] bytes) {
        MemoryStorage m = new MemoryStorage(name, Math.max(DEFAULT_CAP, bytes.length));
        try {
            m.write(ByteBuffer.wrap(bytes), 0);
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
        return m;
    }

    /**
     * A storage holding {@code bytes} like a sparse file: pages that are all
     * zeros are holes (what a file copied with holes preserved looks like).
     */
    public static MemoryStorage sparseOf(String name, byte[] bytes) {
        MemoryStorage m = new MemoryStorage(name, Math.max(DEFAULT_CAP, bytes.length));
        try {
            m.truncate(bytes.length);
            for (int off = 0; off < bytes.length; off += PAGE) {
                int n = Math.min(PAGE, bytes.length - off);
                if (java.util.Arrays.mismatch(bytes, off, off + n, new byte[n], 0, n) >= 0) {
                    m.write(ByteBuffer.wrap(bytes, off, n), off);
                }
            }
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
        return m;
    }

    /** An independent copy, optionally read-only. */
    public MemoryStorage copy(boolean readOnly) {
        return new MemoryStorage(this, readOnly);
    }

    /** The whole content as one array (tests only: bounded by the cap). */
    public byte[] toByteArray() {
        byte[] out = new byte[Math.toIntExact(size)];
        ByteBuffer b = ByteBuffer.wrap(out);
        try {
            read(b, 0);
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
        return out;
    }

    @Override
    public void read(ByteBuffer dst, long position) throws IOException {
        if (position < 0) {
            throw new IOException(name + ": negative read offset");
        }
        long pos = position;
        while (dst.hasRemaining()) {
            int inPage = (int) (pos % PAGE);
            int n = Math.min(dst.remaining(), PAGE - inPage);
            long page = pos / PAGE;
            byte[] p = pos < size && page < pages.length ? pages[(int) page] : null;
            if (p == null || pos >= size) {
                for (int i = 0; i < n; i++) {
                    dst.put((byte) 0);
                }
            } else {
                int valid = (int) Math.min(n, size - pos);
                dst.put(p, inPage, valid);
                for (int i = valid; i < n; i++) {
                    dst.put((byte) 0);
                }
            }
            pos += n;
        }
    }

    @Override
    public void write(ByteBuffer src, long position) throws IOException {
        if (readOnly) {
            throw new IOException(name + ": opened read-only");
        }
        long end = Math.addExact(position, src.remaining());
        if (position < 0 || end > cap) {
            throw new IOException(name + ": write past the storage cap of " + cap + " bytes");
        }
        ensurePages(end);
        long pos = position;
        while (src.hasRemaining()) {
            int inPage = (int) (pos % PAGE);
            int n = Math.min(src.remaining(), PAGE - inPage);
            int page = (int) (pos / PAGE);
            if (pages[page] == null) {
                pages[page] = new byte[PAGE];
            }
            src.get(pages[page], inPage, n);
            pos += n;
        }
        size = Math.max(size, end);
    }

    private void ensurePages(long end) {
        long needed = (end + PAGE - 1) / PAGE;
        if (needed > pages.length) {
            pages = Arrays.copyOf(pages, (int) Math.max(needed, Math.min(Integer.MAX_VALUE - 8, pages.length * 2L)));
        }
    }

    @Override
    public void sync() {
    }

    @Override
    public long size() {
        return size;
    }

    @Override
    public void truncate(long newSize) throws IOException {
        if (readOnly) {
            throw new IOException(name + ": opened read-only");
        }
        if (newSize < 0 || newSize > cap) {
            throw new IOException(name + ": size " + newSize + " is past the storage cap of " + cap + " bytes");
        }
        if (newSize < size) {
            long firstWhole = (newSize + PAGE - 1) / PAGE;
            for (long p = firstWhole; p < pages.length; p++) {
                pages[(int) p] = null;
            }
            if (newSize % PAGE != 0 && pages[(int) (newSize / PAGE)] != null) {
                Arrays.fill(pages[(int) (newSize / PAGE)], (int) (newSize % PAGE), PAGE, (byte) 0);
            }
        }
        size = newSize;
    }

    @Override
    public long nextData(long from) {
        for (long pos = Math.max(0, from); pos < size; pos = (pos / PAGE + 1) * PAGE) {
            long page = pos / PAGE;
            if (page < pages.length && pages[(int) page] != null) {
                return pos;
            }
        }
        return size;
    }

    @Override
    public long nextHole(long from) {
        for (long pos = Math.max(0, from); pos < size; pos = (pos / PAGE + 1) * PAGE) {
            long page = pos / PAGE;
            if (page >= pages.length || pages[(int) page] == null) {
                return pos;
            }
        }
        return size;
    }

    @Override
    public void punchHole(long offset, long length) throws IOException {
        long end = Math.min(Math.addExact(offset, length), size);
        long pos = offset;
        ByteBuffer zeros = ByteBuffer.allocate(PAGE);
        while (pos < end) {
            long page = pos / PAGE;
            long pageEnd = (page + 1) * PAGE;
            if (pos % PAGE == 0 && pageEnd <= end) {
                if (page < pages.length) {
                    pages[(int) page] = null;
                }
                pos = pageEnd;
            } else {
                int n = (int) (Math.min(end, pageEnd) - pos);
                write(zeros.clear().limit(n), pos);
                pos += n;
            }
        }
    }

    @Override
    public long allocatedBytes() {
        long n = 0;
        for (byte[] p : pages) {
            if (p != null) {
                n += PAGE;
            }
        }
        return n;
    }

    @Override
    public boolean isReadOnly() {
        return readOnly;
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public void close() {
    }
}
