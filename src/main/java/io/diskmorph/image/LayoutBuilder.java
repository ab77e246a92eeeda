package io.diskmorph.image;

import java.io.IOException;

/**
 * Builds a target format's metadata over guest data that already sits in
 * the file: the single code path behind both {@code create} (an empty or
 * preallocated mapping) and in-place conversion (the source's mapping).
 *
 * <p>Protocol: the caller announces guest clusters in strictly increasing
 * guest order with {@link #addData} / {@link #addZero} (anything not
 * announced is unallocated: falls through to the backing file or reads as
 * zeros), then calls {@link #finish}. The builder allocates and writes all of
 * its tables through {@link HostSpace} (tables are sized by the virtual disk,
 * refcount structures count themselves), and returns the {@link CommitRecord}:
 * the writes that switch the file to the target format, which the caller
 * makes last ({@link CommitRecord#apply}), after everything else is durable.
 *
 * <p>Memory must not grow with the virtual size: tables are written as they
 * fill; per-host-cluster state (refcounts) is at most a bitmap of the file.
 */
public interface LayoutBuilder {

    /** The target's guest mapping unit (cluster size) in bytes. */
    long clusterSize();

    /** Bytes [0, headerZone) are reserved for the target header; no kept guest data may lie there. */
    long headerZone();

    /**
     * Whether one target cluster of guest data can stay at {@code hostOffset}
     * (alignment, header zone, format limits such as a maximum offset).
     */
    boolean canKeepDataAt(long hostOffset);

    /**
     * Announces that the target cluster at {@code guestOffset} (a multiple of
     * {@link #clusterSize()}) holds data at {@code hostOffset}, one whole cluster
     * (the last cluster of the disk may be partial in guest terms).
     */
    void addData(long guestOffset, long hostOffset) throws IOException;

    /**
     * Announces a cluster that must read as zeros even over a backing file.
     * Throws {@link UnsupportedFeatureException} when the target cannot
     * express it and a backing file is set (without one, the builder may leave
     * the cluster unallocated); see {@link #supportsZeroClusters()}.
     */
    void addZero(long guestOffset) throws IOException;

    /** True when the target has zero markers (qcow2 v3, QED); false for qcow2 v2. */
    boolean supportsZeroClusters();

    /**
     * Allocates and writes the remaining metadata (L1, refcounts, ...) and
     * returns the commit record: the writes, made last, that turn the file
     * into this format (for a header at offset 0, its first sector; the rest
     * of the header zone is written through the host space before).
     */
    CommitRecord finish() throws IOException;

    /**
     * File length the target needs once everything is written (for example
     * QED's multiple of the cluster size), or -1 when the current end suffices.
     * Valid after {@link #finish()}.
     */
    long requiredFileLength();
}
