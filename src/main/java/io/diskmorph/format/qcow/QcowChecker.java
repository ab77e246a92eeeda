package io.diskmorph.format.qcow;

import io.diskmorph.image.CheckReport;

import java.io.IOException;
import java.util.BitSet;

/**
 * diskmorph's own check of a qcow image (qemu-img 7.2 has none for qcow:
 * "does not support checks", exit 63). Every structure a reader trusts is
 * judged, each problem one corruption (exit 2): an L2 table or a data
 * cluster past the end of the file, a data cluster that is not sector
 * aligned (qemu fails such reads), a compressed cluster whose stream lies
 * past the end, and L2 tables or data clusters over the header, the
 * backing file name, the L1 table or each other (a write through one would
 * change the other). qcow has no reference counts, so nothing is a leak:
 * space no table names (a compressed cluster rewritten, a crash between
 * qemu's truncate and its L2 entry) is merely unused. Memory: one bit per
 * cluster of the file.
 */
final class QcowChecker {
    private QcowChecker() {
    }

    /** Progress: phase "tables", the guest bytes of the L1 entries walked. */
    static CheckReport run(QcowImage img, long fileLength, io.diskmorph.image.PhaseProgress progress)
            throws IOException {
        QcowHeader h = img.header;
        long c = h.clusterSize();
        CheckReport r = new CheckReport();
        Units used = new Units(c, fileLength);
        used.mark(0, QcowHeader.BYTES);
        used.mark(h.l1TableOffset, h.l1Bytes());
        if (h.hasBackingFile()) {
            used.mark(h.backingFileOffset, h.backingFileSize);
        }
        long allocated = 0;
        long compressed = 0;
        long l2Bytes = h.l2TableBytes();
        long cov = h.l2Coverage();
        long clustersInDisk = (img.virtualSize() + c - 1) / c;
        var walk = new io.diskmorph.image.TableWalkProgress(progress, "tables", cov, img.virtualSize());
        for (long i = 0; i < h.l1Entries(); i++) {
            walk.at(i);
            long l2 = img.l1Entry(i);
            if (l2 == 0) {
                continue;
            }
            if (l2 < 0 || l2 > fileLength - l2Bytes) {
                r.error(String.format("ERROR: L1 entry %d: L2 table at 0x%x lies past the end of the file", i, l2));
                r.corruptions++;
                continue;
            }
            if (!used.mark(l2, l2Bytes)) {
                r.error(String.format("ERROR: L1 entry %d: L2 table at 0x%x overlaps other metadata or data", i, l2));
                r.corruptions++;
                continue;
            }
            long entries = Math.min(h.l2Entries(), clustersInDisk - i * (cov / c));
            for (long j = 0; j < entries; j++) {
                long e = img.l2Entry(l2, j);
                if (e == 0) {
                    continue;
                }
                long guest = i * cov + j * c;
                if (e < 0) {
                    compressed++;
                    allocated++;
                    long off = h.compressedOffset(e);
                    int n = h.compressedBytes(e);
                    if (off == 0 || n == 0 || off > fileLength - n) {
                        r.error(String.format("ERROR: compressed cluster at guest offset 0x%x: %d bytes at 0x%x "
                                + "lie past the end of the file", guest, n, off));
                        r.corruptions++;
                    }
                    continue;
                }
                allocated++;
                if ((e & 511) != 0) {
                    r.error(String.format("ERROR: cluster at guest offset 0x%x: host offset 0x%x is not sector "
                            + "aligned", guest, e));
                    r.corruptions++;
                } else if (e > fileLength - c) {
                    r.error(String.format("ERROR: cluster at guest offset 0x%x: host offset 0x%x lies past the end "
                            + "of the file", guest, e));
                    r.corruptions++;
                } else if (!used.mark(e, c)) {
                    r.error(String.format("ERROR: cluster at guest offset 0x%x: host offset 0x%x overlaps other "
                            + "metadata or data", guest, e));
                    r.corruptions++;
                }
            }
        }
        walk.done();
        r.totalClusters = clustersInDisk;
        r.allocatedClusters = allocated;
        r.compressedClusters = compressed;
        r.imageEndOffset = fileLength;
        return r;
    }

    /** Host units of one cluster, each used by one structure at most. */
    private static final class Units {
        private final long unit;
        private final BitSet bits = new BitSet();
        private final long limit;

        Units(long unit, long fileLength) {
            this.unit = unit;
            this.limit = Math.min(Integer.MAX_VALUE, fileLength / unit + 1);
        }

        /** Marks the units [off, off + len) touches; false when one was taken (units past the bound are not tracked). */
        boolean mark(long off, long len) {
            if (len <= 0) {
                return true;
            }
            long first = off / unit;
            long last = (off + len - 1) / unit;
            if (last >= limit) {
                return true;
            }
            int from = (int) first;
            int to = (int) last + 1;
            boolean free = bits.nextSetBit(from) < 0 || bits.nextSetBit(from) >= to;
            bits.set(from, to);
            return free;
        }
    }
}
