package io.diskmorph.image;

import io.diskmorph.storage.Storage;

/**
 * What one guest range of a single image layer is (like QEMU's block status,
 * answering for this layer only). Every variant covers {@link #length()}
 * guest bytes starting at the guest offset it was asked for.
 */
public sealed interface Mapping permits Mapping.Data, Mapping.Zero, Mapping.Unallocated, Mapping.Compressed {

    long length();

    /**
     * Guest bytes stored uncompressed and contiguously at {@code hostOffset} of
     * {@code file}: a file of the image's own (a VMDK extent), or null for the
     * image's data file ({@link DiskImage#dataStorage()}). Read it through
     * {@link DiskImage#dataStorage(Data)}.
     */
    record Data(long length, long hostOffset, Storage file) implements Mapping {
        public Data(long length, long hostOffset) {
            this(length, hostOffset, null);
        }
    }

    /**
     * Reads as zeros in this layer (a zero cluster, or a raw hole). {@code hostOffset}
     * is the preallocated host location when the format keeps one (qcow2 zero
     * cluster with an offset, raw hole), else -1.
     */
    record Zero(long length, long hostOffset) implements Mapping {
        public Zero(long length) {
            this(length, -1);
        }

        public boolean hasHostOffset() {
            return hostOffset >= 0;
        }
    }

    /**
     * Not allocated in this layer: reads fall through to the backing image, or zeros without one.
     * {@code hostOffset} is the host location the format already reserved for the range (qcow2
     * extended L2: an unallocated subcluster of an allocated cluster; qemu-img map prints it when
     * no backing layer answers), else -1.
     */
    record Unallocated(long length, long hostOffset) implements Mapping {
        public Unallocated(long length) {
            this(length, -1);
        }

        public boolean hasHostOffset() {
            return hostOffset >= 0;
        }
    }

    /**
     * Part of one compressed cluster. The compressed stream starts at byte
     * {@code hostOffset} and spans at most {@code compressedLength} bytes;
     * {@code offsetInCluster} is where the requested guest range starts inside
     * the decompressed cluster.
     */
    record Compressed(long length, long hostOffset, int compressedLength, long offsetInCluster) implements Mapping {
    }
}
