package io.diskmorph.image;

import java.io.IOException;

/**
 * Optional capability of a {@link DiskImage}: where its own metadata lies in
 * its file (header, tables, maps, logs), for the picture of the host file
 * ({@code diskmorph layout}). Reads metadata only, never guest data; what a
 * driver does not report is drawn as data when the mapping says so, else as
 * unreferenced space or a hole of the file.
 */
public interface MetadataRegions {

    /**
     * The kind a driver reports its compressed guest data under when it
     * knows their exact extent in the file (see {@link #reportsCompressedData}).
     */
    String COMPRESSED_DATA = "compressed data";

    /** Receives one region. */
    @FunctionalInterface
    interface Sink {
        /**
         * @param kind what the bytes are, for the legend ("header", "L2 tables", "block map"): one
         *             name per kind, the same for every region of that kind
         */
        void region(String kind, long hostOffset, long length) throws IOException;
    }

    /**
     * Reports every metadata region of the image's own file, in any order,
     * each byte at most once. Regions past the end of the file are clipped by
     * the caller.
     */
    void metadataRegions(Sink sink) throws IOException;

    /**
     * True when {@link #metadataRegions} also reports the compressed guest
     * data, exactly, as {@link #COMPRESSED_DATA}: the layout then does not
     * take it from the mapping, whose compressed length may be only a bound
     * (a streamOptimized VMDK's grain answers say two grains; the marker in
     * front of each grain holds the real size).
     */
    default boolean reportsCompressedData() {
        return false;
    }
}
