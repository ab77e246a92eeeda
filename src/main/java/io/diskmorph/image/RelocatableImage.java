package io.diskmorph.image;

import io.diskmorph.storage.Storage;

import java.io.IOException;

/**
 * A capability of a {@link DiskImage} whose driver can move the image's data
 * units and metadata inside its own file while the file stays a valid image
 * of its format after every durable step: what the in-place conversion to
 * raw needs, which puts every unit at its guest offset by small steps
 * (see docs/ARCHITECTURE.md, "In place to raw").
 *
 * <p>The image must keep its data in units of {@link #unitSize()} bytes, each
 * one aligned host run (no compression, no subclusters), and have no other
 * references to its clusters than the active mapping (no snapshots).
 */
public interface RelocatableImage {

    /** Bytes of one data unit (the cluster size). */
    long unitSize();

    /**
     * Why this image's units cannot be relocated (one line for the user), or
     * null when they can.
     */
    String notRelocatable() throws IOException;

    /**
     * Bytes of the complete set of metadata {@link #relocate} writes at
     * {@code metadataOffset} (unit-aligned), for the space check.
     */
    long relocatedMetadataBytes(long metadataOffset) throws IOException;

    /**
     * Writes a fresh copy of all the image's metadata at {@code
     * metadataOffset} (past every unit of the file), describing the mapping
     * as it is, makes it durable, and switches the header to it with one
     * sector write, synced. Afterwards the only metadata below {@code
     * metadataOffset} is the header unit at offset 0; every other unit not
     * holding data is free. The image object itself must not be used for
     * I/O afterwards (its caches describe the old tables).
     *
     * @param file the image's file, writable
     */
    Relocation relocate(Storage file, long metadataOffset) throws IOException;

    /** The driver's side of a relocation in progress. */
    interface Relocation {
        /** End of the relocated metadata: the file is at least this long until the conversion ends. */
        long metadataEnd();

        /**
         * Points the guest units at {@code guestOffsets[i]} to the units at
         * {@code hostOffsets[i]} (free until now), whose bytes the caller
         * has written: the driver makes them durable before any entry points
         * to them (its first sync). Durable when it returns; a crash at any
         * point leaves a valid image with the old or the new mapping of
         * each unit (at worst leaked units). The old host units are free
         * afterwards, so the caller may reuse or punch them.
         */
        void remap(long[] guestOffsets, long[] hostOffsets, int count) throws IOException;

        /** Makes every metadata write durable. */
        void sync() throws IOException;
    }
}
