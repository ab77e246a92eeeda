package io.diskmorph.format.vdi;

import io.diskmorph.image.CheckReport;
import io.diskmorph.image.PhaseProgress;
import io.diskmorph.image.TableWalkProgress;

import java.io.IOException;
import java.util.BitSet;

/**
 * qemu 7.2's vdi_check: every allocated entry must name a host block below
 * blocks_in_image ("too large") and no other entry's ("also used by"), and
 * the entries that pass the first test must number blocks_allocated
 * ("allocated blocks mismatch"); each is one corruption, with qemu's
 * message. What qemu misses, counted as corruptions too: a block whose
 * guest bytes lie past the end of the file (qemu reads zeros there), and a
 * block at or past blocks_allocated (the next allocation hands it out again).
 * Memory: one bit per host block that fits in the file.
 */
final class VdiChecker {
    private VdiChecker() {
    }

    /** Progress: phase "tables", the guest bytes of the block map entries judged. */
    static CheckReport run(VdiHeader header, BlockMap map, long fileLength, PhaseProgress progress)
            throws IOException {
        CheckReport r = new CheckReport();
        long blocks = header.blocksInImage;
        // host blocks past the end of the file are reported on their own, so the bitmap stops there
        long inFile = fileLength <= header.offsetData ? 0
                : Math.ceilDiv(fileLength - header.offsetData, VdiImage.BLOCK);
        BitSet used = new BitSet((int) Math.min(blocks, Math.min(inFile, Integer.MAX_VALUE)));
        long counted = 0;
        long size = header.virtualSize();
        TableWalkProgress walk = new TableWalkProgress(progress, "tables", VdiImage.BLOCK, size);
        for (long b = 0; b < blocks; b++) {
            walk.at(b);
            int e = map.get(b);
            if (!BlockMap.isAllocated(e)) {
                continue;
            }
            long index = Integer.toUnsignedLong(e);
            if (index >= blocks) {
                r.error("ERROR: block index " + b + " too large, is " + index);
                r.corruptions++;
                continue;
            }
            counted++;
            long host = header.blockOffset(index);
            long guestBytes = Math.max(1, Math.min(VdiImage.BLOCK, size - b * VdiImage.BLOCK));
            if (host + guestBytes > fileLength) {
                r.error(String.format("ERROR: block %d at host offset 0x%x lies past the end of the file (%d bytes)",
                        b, host, fileLength));
                r.corruptions++;
                continue;
            }
            if (used.get((int) index)) {
                r.error("ERROR: block index " + index + " also used by " + index);
                r.corruptions++;
            } else {
                used.set((int) index);
            }
            if (index >= header.blocksAllocated) {
                r.error("ERROR: block " + b + " uses host block " + index + ", which blocks_allocated ("
                        + header.blocksAllocated + ") counts as free");
                r.corruptions++;
            }
        }
        walk.done();
        if (counted != header.blocksAllocated) {
            r.error("ERROR: allocated blocks mismatch, is " + counted + ", should be " + header.blocksAllocated);
            r.corruptions++;
        }
        return r;
    }
}
