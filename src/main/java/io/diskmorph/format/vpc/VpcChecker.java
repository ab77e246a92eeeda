package io.diskmorph.format.vpc;

import io.diskmorph.image.CheckReport;
import io.diskmorph.image.PhaseProgress;
import io.diskmorph.image.RepairMode;
import io.diskmorph.storage.Storage;
import io.diskmorph.image.TableWalkProgress;

import java.io.IOException;
import java.util.Arrays;

/**
 * diskmorph's VHD check (qemu-img 7.2 has none: "This image format does not
 * support checks"). Corruptions: a footer without its checksum; a dynamic
 * image's two footers that differ or one of them missing; a dynamic header
 * without its checksum; a BAT entry whose block (bitmap and data) lies past
 * the end of the file or over the footer copy, the dynamic header or the
 * BAT, or over another block; a fixed disk that reaches into its footer.
 * {@code -r all} repairs what one good copy determines: a damaged footer
 * (at either end) from the other, good one; anything else it reports and
 * leaves. Memory: 8 bytes per allocated block.
 */
final class VpcChecker {
    private VpcChecker() {
    }

    /**
     * Progress: phase "tables", the guest bytes of the BAT entries judged (a
     * fixed image has no BAT: the phase starts and ends).
     */
    static CheckReport run(VpcImage image, RepairMode repair, PhaseProgress progress) throws IOException {
        CheckReport r = new CheckReport();
        Storage storage = image.storage();
        long length = storage.size();
        VpcImage.Footers f = VpcImage.footers(storage, length);
        boolean endGood = f.atEnd().hasCookie() && f.atEnd().checksumValid();
        if (image.isFixed()) {
            new TableWalkProgress(progress, "tables", 1, image.virtualSize()).done();
            if (!endGood) {
                r.error("ERROR: the footer's checksum is wrong");
                r.corruptions++;
            }
            if (image.virtualSize() > length - VpcFooter.BYTES) {
                r.error("ERROR: the disk (" + image.virtualSize() + " bytes) reaches into the footer of the file ("
                        + length + " bytes)");
                r.corruptions++;
            }
            return r;
        }
        boolean startGood = f.atStart().hasCookie() && f.atStart().checksumValid();
        VpcDynamicHeader h = image.header();
        // the footer belongs after the last block (where the next allocation puts it), or anywhere past it
        long footerPlace = f.endOffset();
        boolean endInPlace = footerPlace >= image.nextFree();
        if (!startGood || !endGood || !endInPlace
                || !Arrays.equals(f.atStart().bytes(), f.atEnd().bytes())) {
            String what = !startGood && !endGood ? "both footers are damaged"
                    : !startGood ? "the footer copy at offset 0 is damaged"
                    : !endInPlace ? "the footer at the end is missing (the file ends with its last block)"
                    : !endGood ? "the footer at the end of the file is damaged"
                    : "the footer copy at offset 0 differs from the footer at the end";
            r.error("ERROR: " + what);
            r.corruptions++;
            if (repair.all() && (startGood || endGood) && (endInPlace || startGood)) {
                // the good one wins; when both are intact but differ, the copy at 0 is what qemu reads
                VpcFooter good = startGood ? f.atStart() : f.atEnd();
                long at = endInPlace ? footerPlace : image.nextFree();
                storage.write(good.buffer(), startGood ? at : 0);
                storage.sync();
                r.corruptionsFixed++;
                r.corruptions--;
                r.repaired = true;
            }
        }
        if (!h.checksumValid) {
            r.error(String.format("ERROR: the dynamic header at 0x%x has a wrong checksum", h.offset));
            r.corruptions++;
        }
        checkBlocks(image, h, length, r, progress);
        return r;
    }

    private static void checkBlocks(VpcImage image, VpcDynamicHeader h, long length, CheckReport r,
                                    PhaseProgress progress) throws IOException {
        Bat bat = image.bat();
        long span = h.bitmapSize + h.blockSize;
        long[][] metadata = {{0, VpcFooter.BYTES}, {h.offset, h.offset + VpcDynamicHeader.BYTES},
                {h.batOffset, h.batEnd()}};
        long[] starts = new long[16];
        int n = 0;
        TableWalkProgress walk = new TableWalkProgress(progress, "tables", h.blockSize,
                Math.min(image.virtualSize(), h.maxTableEntries * h.blockSize));
        for (long b = 0; b < h.maxTableEntries; b++) {
            walk.at(b);
            int e = bat.get(b);
            if (e == Bat.UNALLOCATED) {
                continue;
            }
            long start = Integer.toUnsignedLong(e) * 512;
            if (start + span > length) {
                r.error(String.format("ERROR: block %d at host offset 0x%x lies past the end of the file (%d bytes)",
                        b, start, length));
                r.corruptions++;
                continue;
            }
            boolean overMetadata = false;
            for (long[] m : metadata) {
                overMetadata |= start < m[1] && m[0] < start + span;
            }
            if (overMetadata) {
                r.error(String.format("ERROR: block %d at host offset 0x%x overlaps the image's footer copy, "
                        + "dynamic header or BAT", b, start));
                r.corruptions++;
                continue;
            }
            if (n == starts.length) {
                starts = Arrays.copyOf(starts, n * 2);
            }
            starts[n++] = start;
        }
        walk.done();
        long[] sorted = Arrays.copyOf(starts, n);
        Arrays.sort(sorted);
        for (int i = 1; i < n; i++) {
            long prev = sorted[i - 1];
            long cur = sorted[i];
            if (cur - prev < span) {
                r.error(String.format("ERROR: the blocks at host offsets 0x%x and 0x%x overlap", prev, cur));
                r.corruptions++;
            }
        }
        r.allocatedClusters = n;
        r.totalClusters = h.maxTableEntries;
    }
}
