package io.diskmorph.image;

import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * Optional capability of a writable {@link DiskImage} whose format stores
 * whole guest clusters compressed (qcow2; qemu-img convert -c). Compression
 * is split from writing so that a copy can compress on several threads and
 * write from one: each {@link Compressor} belongs to one thread, while
 * {@link #writeCompressed} follows the image's usual one-thread-at-a-time rule.
 */
public interface CompressedClusterWriter {

    /** Compresses clusters with the image's algorithm and settings. Not thread-safe; close it when done. */
    interface Compressor extends AutoCloseable {
        /**
         * Compresses all remaining bytes of {@code cluster} (exactly one cluster,
         * the disk's last cluster zero-padded) into {@code out}, which holds at
         * least {@link #clusterSize()} bytes. Returns the compressed length, or
         * -1 when the result would not be smaller than a cluster (qemu then
         * writes the cluster uncompressed, and so should the caller).
         */
        int compress(ByteBuffer cluster, byte[] out) throws IOException;

        @Override
        void close();
    }

    /** The guest cluster size compressed writes cover. */
    long clusterSize();

    /** A compressor for one thread. */
    Compressor newCompressor() throws IOException;

    /**
     * Stores the cluster at {@code guestOffset} (a multiple of the cluster
     * size) as {@code length} compressed bytes of {@code data}; whatever the
     * cluster held before is released. Metadata is cached like any write and
     * made durable by {@link DiskImage#flush}.
     */
    void writeCompressed(long guestOffset, byte[] data, int length) throws IOException;
}
