package io.diskmorph.format.parallels;

import io.diskmorph.image.CheckReport;
import io.diskmorph.image.PhaseProgress;
import io.diskmorph.image.TableWalkProgress;
import io.diskmorph.image.RepairMode;

import java.io.IOException;

/**
 * qemu 7.2's parallels_co_check, with its messages and counters: an image
 * not closed correctly (inuse set) is one corruption ("-r all" repairs it);
 * a cluster that starts past the end of the file is one corruption ("-r
 * all" clears its entry); the file's bytes past the last cluster (qemu's
 * image end offset: the highest cluster plus one, a cluster even when none
 * is allocated) are leaks, counted in clusters, repaired by cutting the
 * file there. The allocated and fragmented counts follow qemu's walk.
 *
 * <p>What qemu misses, counted as corruptions too (never repaired): a
 * cluster over the header and BAT, and one whose guest bytes run past the
 * end of the file (qemu reads zeros there).
 *
 * <p>Differences: qemu's -r leaks cuts an empty image whose BAT spans
 * several clusters inside its BAT (its image end offset is one cluster),
 * and its close puts the length back: it reports a phantom leak repaired.
 * diskmorph never cuts the BAT, and reports the leak as not repaired.
 * qemu's close after a repair cuts the file to the
 * data_end it computed at open, which lies past a cleared entry's cluster:
 * it grows the file it just repaired (a 64 KiB image with an entry at
 * 16 MiB ends 16 MiB long). diskmorph leaves the file at its length.
 */
final class ParallelsChecker {
    /** The report, and what the caller must write: the BAT pages changed, the length to cut the file to (or -1). */
    record Result(CheckReport report, boolean batChanged, long truncateTo) {
    }

    private ParallelsChecker() {
    }

    /** Progress: phase "tables", the guest bytes of the BAT entries judged. */
    static Result run(ParallelsImage img, long fileLength, boolean unclean, RepairMode repair, PhaseProgress progress)
            throws IOException {
        ParallelsHeader h = img.header;
        Bat bat = img.bat;
        long cluster = h.clusterSize();
        CheckReport r = new CheckReport();
        boolean fixErrors = repair.all();
        boolean fixLeaks = repair.leaks();
        if (unclean) {
            r.error((fixErrors ? "Repairing" : "ERROR") + " image was not closed correctly");
            r.corruptions++;
            if (fixErrors) {
                r.corruptionsFixed++;
            }
        }
        r.totalClusters = h.batEntries;
        r.compressedClusters = 0;
        r.allocatedClusters = 0;
        r.fragmentedClusters = 0;
        boolean batChanged = false;
        long highOff = 0;
        long prevOff = 0;
        TableWalkProgress walk = new TableWalkProgress(progress, "tables", cluster, img.virtualSize());
        for (long i = 0; i < h.batEntries; i++) {
            walk.at(i);
            long entry = bat.get(i);
            long off = entry * h.entryUnit();
            if (off == 0) {
                prevOff = 0;
                continue;
            }
            if (off > fileLength) {
                r.error((fixErrors ? "Repairing" : "ERROR") + " cluster " + i + " is outside image");
                r.corruptions++;
                if (fixErrors) {
                    prevOff = 0;
                    bat.set(i, 0);
                    batChanged = true;
                    r.corruptionsFixed++;
                    continue;
                }
            } else if (off < h.batEnd()) {
                r.error(String.format("ERROR cluster %d at host offset 0x%x lies over the header and BAT", i, off));
                r.corruptions++;
            } else if (off + img.clusterBytes(i) > fileLength) {
                r.error(String.format("ERROR cluster %d at host offset 0x%x ends past the end of the file", i, off));
                r.corruptions++;
            }
            r.allocatedClusters++;
            highOff = Math.max(highOff, off);
            if (prevOff != 0 && prevOff + cluster != off) {
                r.fragmentedClusters++;
            }
            prevOff = off;
        }
        walk.done();
        r.imageEndOffset = highOff + cluster;
        long truncateTo = -1;
        if (fileLength > r.imageEndOffset) {
            long count = Math.ceilDiv(fileLength - r.imageEndOffset, cluster);
            r.error((fixLeaks ? "Repairing" : "ERROR") + " space leaked at the end of the image "
                    + (fileLength - r.imageEndOffset));
            r.leaks += count;
            if (fixLeaks) {
                truncateTo = r.imageEndOffset;
                r.leaksFixed += count;
            }
        }
        // counters describe the image as it is after the fixes (qemu subtracts nothing: it re-checks)
        return new Result(r, batChanged, truncateTo);
    }
}
