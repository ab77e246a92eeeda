package io.diskmorph.api;

import java.io.Closeable;
import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * Bytes of an image kept somewhere other than a local file (an object
 * store, a block device behind a protocol, memory), for
 * {@link Diskmorph#open(ImageStorage, OpenOptions)}. The contract is the
 * one diskmorph's own files keep: positioned reads and writes, nothing
 * durable until {@link #sync()} returns, writes between two syncs reaching
 * the medium in any order. Calls come from one thread at a time.
 */
public interface ImageStorage extends Closeable {

    /**
     * Reads {@code dst.remaining()} bytes at {@code position}; bytes past the
     * end read as zeros. The buffer's position advances to its limit.
     *
     * @param dst      where the bytes go
     * @param position byte offset in the storage
     * @throws IOException when the medium fails
     */
    void read(ByteBuffer dst, long position) throws IOException;

    /**
     * Writes all of {@code src} at {@code position}, growing the storage if
     * needed.
     *
     * @param src      the bytes; its position advances to its limit
     * @param position byte offset in the storage
     * @throws IOException when the medium fails or the storage is read-only
     */
    void write(ByteBuffer src, long position) throws IOException;

    /**
     * Makes every completed write durable: an ordering point.
     *
     * @throws IOException when the medium fails
     */
    void sync() throws IOException;

    /**
     * The length in bytes.
     *
     * @return the current length
     * @throws IOException when the medium fails
     */
    long size() throws IOException;

    /**
     * Sets the length: shrinks, or grows with a tail that reads as zeros.
     *
     * @param size the new length in bytes
     * @throws IOException when the medium fails or the storage is read-only
     */
    void truncate(long size) throws IOException;

    /**
     * Whether writes are refused.
     *
     * @return true for a read-only storage
     */
    boolean isReadOnly();

    /**
     * A short name for messages.
     *
     * @return a path, a URL or a label
     */
    String name();

    /**
     * The offset of the first data byte at or after {@code from}; the
     * default, for storages without sparse information, says all is data.
     *
     * @param from a byte offset
     * @return the offset, or {@link #size()} when only holes follow
     * @throws IOException when the medium fails
     */
    default long nextData(long from) throws IOException {
        return Math.min(from, size());
    }

    /**
     * The offset of the first hole byte at or after {@code from}; the end
     * counts as a hole.
     *
     * @param from a byte offset
     * @return the offset, at most {@link #size()}
     * @throws IOException when the medium fails
     */
    default long nextHole(long from) throws IOException {
        return size();
    }

    /**
     * Makes a range read as zeros, keeping the length; the default writes
     * zeros.
     *
     * @param offset byte offset of the range
     * @param length bytes in the range
     * @throws IOException when the medium fails
     */
    default void punchHole(long offset, long length) throws IOException {
        ByteBuffer zeros = ByteBuffer.allocate((int) Math.min(length, 1 << 20));
        for (long done = 0; done < length; ) {
            int n = (int) Math.min(zeros.capacity(), length - done);
            write(zeros.clear().limit(n), offset + done);
            done += n;
        }
    }

    /**
     * Bytes the storage occupies on its medium.
     *
     * @return the bytes, or -1 when unknown (the default)
     * @throws IOException when the medium fails
     */
    default long allocatedBytes() throws IOException {
        return -1;
    }
}
