package io.diskmorph.storage;

import java.io.Closeable;
import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * The only way bytes reach an image file. Every write is a positioned write;
 * nothing is durable until {@link #sync()} returns, and writes issued between
 * two syncs may reach the disk in any order (crash tests rely on exactly this
 * contract). No memory-mapped writes.
 *
 * <p>Offsets and lengths are byte values; all methods are safe to call from
 * one thread at a time (callers serialise).
 */
public interface Storage extends Closeable {

    /**
     * Reads {@code dst.remaining()} bytes at {@code position}. Bytes past the
     * end of the file read as zeros (like a sparse tail), so callers never see
     * a short read; the buffer's position advances to its limit.
     */
    void read(ByteBuffer dst, long position) throws IOException;

    /** Writes all of {@code src} at {@code position}, growing the file if needed. */
    void write(ByteBuffer src, long position) throws IOException;

    /** Makes every completed write durable (fdatasync/fsync); an ordering point. */
    void sync() throws IOException;

    /** Current length of the file in bytes. */
    long size() throws IOException;

    /** Sets the file length: shrinks, or grows with a sparse (hole) tail. */
    void truncate(long size) throws IOException;

    /**
     * Offset of the first data byte at or after {@code from}, or {@link #size()}
     * when only holes follow. Storages without sparse information report
     * {@code from} (everything is data).
     */
    long nextData(long from) throws IOException;

    /**
     * Offset of the first hole byte at or after {@code from}; the end of the
     * file counts as a hole, so the result is at most {@link #size()}.
     */
    long nextHole(long from) throws IOException;

    /**
     * Deallocates a range so that it reads as zeros, keeping the file size.
     * Storages that cannot punch holes write zeros instead.
     */
    void punchHole(long offset, long length) throws IOException;

    /** Bytes the file occupies on disk (st_blocks * 512), or -1 when unknown. */
    long allocatedBytes() throws IOException;

    /**
     * A hint that sparse queries or the allocated size will be asked for
     * soon: a storage that sets them up lazily may start now, in the
     * background.
     */
    default void expectSparseQueries() {
    }

    boolean isReadOnly();

    /** A short name for messages (the file path, or a test label). */
    String name();

    /** Reads exactly {@code length} bytes at {@code position} into a new heap buffer. */
    default ByteBuffer readBytes(long position, int length) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(length);
        read(b, position);
        return b.flip();
    }
}
