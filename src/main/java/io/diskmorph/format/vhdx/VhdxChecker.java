package io.diskmorph.format.vhdx;

import io.diskmorph.image.CheckReport;
import io.diskmorph.image.PhaseProgress;
import io.diskmorph.image.TableWalkProgress;

import java.io.IOException;
import java.util.BitSet;

/**
 * check for VHDX.
 *
 * <p>What qemu-img 7.2 checks (vhdx_co_check, vhdx_check_bat_entries): each
 * fully present payload block must start inside the file, end inside it
 * (the last block only as far as the disk reaches), and not overlap the log,
 * the BAT or the metadata region; each failure is one corruption (exit 2).
 * The same tests here, with qemu's wording.
 *
 * <p>What it misses, counted as corruptions too: a header or region table
 * copy that is damaged (signature, CRC-32C) or region table copies that
 * differ; payload blocks in the header section, overlapping each other or a
 * present sector bitmap block; unknown block states; partially present
 * blocks in an image without a parent, or whose sector bitmap is not
 * present. Memory: a bit per MiB of the file for the overlap test.
 */
final class VhdxChecker {
    /** Problems printed; all are counted. */
    static final int MAX_MESSAGES = 100;

    private final VhdxImage image;
    private final VhdxLayout l;
    private final CheckReport report = new CheckReport();
    /** MiB units of the file that hold a payload block or a sector bitmap block already seen. */
    private final BitSet used = new BitSet();
    private long printed;
    private long unprinted;

    private VhdxChecker(VhdxImage image) {
        this.image = image;
        this.l = image.layout;
    }

    /** Progress: phase "tables", the guest bytes of the BAT's payload entries judged. */
    static CheckReport run(VhdxImage image, PhaseProgress progress) throws IOException {
        VhdxChecker c = new VhdxChecker(image);
        if (image.log != null) {
            c.report.error("The VHDX log holds " + image.log.entries() + " entries not yet applied: the image is "
                    + "checked as their replay would leave it (the file is not changed)");
        }
        c.headers();
        c.bat(progress);
        if (c.unprinted > 0) {
            c.report.error("ERROR: " + c.unprinted + " more problems (not listed)");
        }
        return c.report;
    }

    private void problem(String message) {
        report.corruptions++;
        if (printed++ < MAX_MESSAGES) {
            report.error(message);
        } else {
            unprinted++;
        }
    }

    private void headers() {
        for (int i = 0; i < 2; i++) {
            if (!l.headerValid[i]) {
                problem("ERROR: VHDX header " + (i + 1) + " (at " + (i == 0 ? 64 : 128) + " KiB) is damaged: its "
                        + "signature, version or CRC-32C is wrong");
            }
            if (!l.regionTableValid[i]) {
                problem("ERROR: VHDX region table " + (i + 1) + " (at " + (i == 0 ? 192 : 256) + " KiB) is "
                        + "damaged: its signature or CRC-32C is wrong");
            }
        }
        if (l.regionTableValid[0] && l.regionTableValid[1] && !l.regionTablesEqual) {
            problem("ERROR: the two VHDX region tables differ");
        }
    }

    private void bat(PhaseProgress progress) throws IOException {
        TableWalkProgress walk = new TableWalkProgress(progress, "tables", l.blockSize, image.virtualSize());
        for (long block = 0; block < l.dataBlocks; block++) {
            walk.at(block);
            long index = l.payloadEntry(block);
            long entry = image.batEntry(index);
            int state = (int) (entry & 7);
            long off = entry & VhdxImage.OFFSET_MASK;
            switch (state) {
                case VhdxImage.FULLY_PRESENT -> present(block, index, off, image.blockLength(block));
                case VhdxImage.PARTIALLY_PRESENT -> {
                    if (!l.hasParent) {
                        problem("ERROR: VHDX BAT entry " + index + ": payload block " + block + " is partially "
                                + "present in an image without a parent");
                    } else {
                        present(block, index, off, image.blockLength(block));
                        long bi = l.bitmapEntry(block);
                        if ((image.batEntry(bi) & 7) != VhdxImage.BITMAP_PRESENT) {
                            problem("ERROR: VHDX BAT entry " + index + ": payload block " + block + " is partially "
                                    + "present, but the sector bitmap of its chunk (BAT entry " + bi + ") is not");
                        }
                    }
                }
                case VhdxImage.NOT_PRESENT, VhdxImage.UNDEFINED, VhdxImage.ZERO, VhdxImage.UNMAPPED,
                     VhdxImage.UNMAPPED_V095 -> {
                }
                default -> problem("ERROR: VHDX BAT entry " + index + ": payload block " + block + " has the "
                        + "unknown state " + state);
            }
            if ((block + 1) % l.chunkRatio == 0 || block + 1 == l.dataBlocks) {
                long bi = l.bitmapEntry(block);
                if (bi < l.batEntries) {
                    bitmap(bi, image.batEntry(bi));
                }
            }
        }
        walk.done();
    }

    /** A block the file holds: qemu's three tests, then the header section and overlaps with others. */
    private void present(long block, long index, long off, long length) {
        long fileSize = l.fileSize;
        if (off >= fileSize) {
            problem("VHDX BAT entry " + index + " start offset " + off + " points after end of file (" + fileSize
                    + "). Image has probably been truncated.");
        } else if (off + length > fileSize) {
            problem("VHDX BAT entry " + index + " end offset " + (off + length - 1) + " points after end of file ("
                    + fileSize + "). Image has probably been truncated.");
        }
        for (VhdxLayout.Region r : l.regions) {
            if (r.overlaps(off, off + l.blockSize)) {
                problem("VHDX region " + off + "-" + (off + l.blockSize) + " overlaps with region " + r.start() + "-"
                        + r.end() + " (payload block " + block + " over " + r.what() + ")");
            }
        }
        if (off < VhdxLayout.HEADER_SECTION) {
            problem("ERROR: VHDX BAT entry " + index + ": payload block " + block + " at offset " + off + " lies in "
                    + "the header section");
        } else if (off < fileSize) {
            claim(off, Math.min(l.blockSize, fileSize - off), "payload block " + block, index);
        }
    }

    private void bitmap(long index, long entry) {
        int state = (int) (entry & 7);
        long off = entry & VhdxImage.OFFSET_MASK;
        if (state == 0) {
            return;
        }
        if (state != VhdxImage.BITMAP_PRESENT) {
            problem("ERROR: VHDX BAT entry " + index + ": a sector bitmap entry with the unknown state " + state);
            return;
        }
        if (!l.hasParent) {
            return; // not used without a parent (the spec: present only in differencing images); nothing reads it
        }
        if (off < VhdxLayout.HEADER_SECTION || off > l.fileSize - VhdxLayout.MIB) {
            problem("ERROR: VHDX BAT entry " + index + ": the sector bitmap block at offset "
                    + Long.toUnsignedString(off) + " lies in the header section or past the end of the file");
            return;
        }
        for (VhdxLayout.Region r : l.regions) {
            if (r.overlaps(off, off + VhdxLayout.MIB)) {
                problem("ERROR: VHDX BAT entry " + index + ": the sector bitmap block at offset " + off + " overlaps "
                        + r.what());
            }
        }
        claim(off, VhdxLayout.MIB, "a sector bitmap block", index);
    }

    /** Marks the MiB units of a block; one already marked means two blocks share file space. */
    private void claim(long off, long length, String what, long index) {
        long first = off / VhdxLayout.MIB;
        long last = (off + length - 1) / VhdxLayout.MIB;
        if (last >= Integer.MAX_VALUE) {
            return; // past 2^51 bytes: the end-of-file test reported it
        }
        int shared = used.nextSetBit((int) first);
        if (shared >= 0 && shared <= last) {
            problem("ERROR: VHDX BAT entry " + index + ": " + what + " at offset " + off + " overlaps another "
                    + "payload or sector bitmap block (at MiB " + shared + " of the file)");
            return;
        }
        used.set((int) first, (int) last + 1);
    }
}
