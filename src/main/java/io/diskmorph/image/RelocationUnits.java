package io.diskmorph.image;

import java.io.IOException;

/**
 * The walk every {@link RelocatableImage.Relocation} starts from: the
 * image's own data units (clusters, grains) with their guest and host
 * offsets, so the new tables can be filled. A data extent that is not
 * unit-aligned, or compressed data, cannot be moved a unit at a time and is
 * refused; a unit over the header or past the start of the relocated tables
 * means the relocation laid its tables over data (a bug, not a bad image).
 */
public final class RelocationUnits {
    private RelocationUnits() {
    }

    /** Receives one data unit. */
    @FunctionalInterface
    public interface Visitor {
        void unit(long guestOffset, long hostOffset) throws IOException;
    }

    /**
     * Calls {@code visitor} for every data unit of {@code img}'s own layer, in
     * guest order.
     *
     * @param unitSize the unit: the format's cluster or grain size
     * @param base     the host offset where the relocated tables begin
     * @param unitName what the format calls a unit ("cluster", "grain"), for messages
     */
    public static void forEachData(DiskImage img, long unitSize, long base, String unitName, Visitor visitor)
            throws IOException {
        long v = img.virtualSize();
        for (long pos = 0; pos < v; ) {
            Mapping m = img.mapping(pos, v - pos);
            if (m instanceof Mapping.Data d) {
                if (pos % unitSize != 0 || d.hostOffset() % unitSize != 0) {
                    throw new UnsupportedFeatureException("a data " + unitName + " at guest offset " + pos
                            + " is not " + unitName + " aligned in the file");
                }
                for (long g = pos; g < pos + d.length(); g += unitSize) {
                    long host = d.hostOffset() + (g - pos);
                    if (host < unitSize || host + unitSize > base) {
                        throw new IllegalStateException("data " + unitName + " at host offset " + host
                                + " overlaps the header or the relocated tables");
                    }
                    visitor.unit(g, host);
                }
            } else if (m instanceof Mapping.Compressed) {
                throw new UnsupportedFeatureException("the image has compressed " + unitName + "s, which cannot "
                        + "be relocated yet; use a copy conversion");
            }
            pos += m.length();
        }
    }

    /**
     * The roll-forward's remap of one unit is sound: the guest unit was
     * mapped (not to 0: qcow2 and QED never map there, the header is there)
     * and its new place is unit-aligned between the header and the
     * relocated tables. Anything else is a bug of the caller.
     */
    public static void checkRemap(long guestOffset, long wasHost, long host, long unitSize, long base) {
        if (wasHost < unitSize || host % unitSize != 0 || host < unitSize || host + unitSize > base
                || guestOffset % unitSize != 0) {
            throw new IllegalStateException(String.format("remap of guest 0x%x from 0x%x to 0x%x",
                    guestOffset, wasHost, host));
        }
    }

    /**
     * A slot per second-level table of the source's format ({@code tables}
     * of them, each covering {@code coverage} guest bytes): -1 where the
     * table's range maps no data, else the next number, so only the tables
     * that hold data are relocated, densely. Compressed data is refused here
     * already, before anything is planned or written.
     */
    public static int[] tableSlots(DiskImage img, long coverage, int tables) throws IOException {
        long v = img.virtualSize();
        int[] slot = new int[tables];
        int count = 0;
        for (int i = 0; i < tables; i++) {
            slot[i] = -1;
            long from = i * coverage;
            long to = Math.min(v, from + coverage);
            for (long pos = from; pos < to; ) {
                Mapping m = img.mapping(pos, to - pos);
                if (m instanceof Mapping.Compressed) {
                    throw new UnsupportedFeatureException("the image has compressed data (at guest offset "
                            + pos + "), which cannot be relocated yet; use a copy conversion");
                }
                if (m instanceof Mapping.Data) {
                    slot[i] = count++;
                    break;
                }
                pos += m.length();
            }
        }
        return slot;
    }
}
