package io.diskmorph.image;

import java.util.List;
import java.util.Map;

/**
 * What {@code info} shows of one image layer; field meanings follow
 * qemu-img's JSON ("virtual-size", "cluster-size", "dirty-flag", ...).
 *
 * @param clusterSize      0 when the format has no clusters (raw)
 * @param actualSize       bytes allocated on disk, -1 when unknown
 * @param backingFilename  as stored in the image, or null
 * @param fullBackingFilename resolved the way QEMU resolves it (relative to the image's directory), or null
 * @param backingFormat    as stored in the image, or null
 * @param formatSpecific   ordered "format-specific" data (without the "type" key), or null
 * @param snapshots        internal snapshots, empty when none
 * @param dirtyFlagShown   whether qemu-img shows "dirty-flag" (and a cluster size): false where qemu's
 *                         driver has no block-driver info to give (bdrv_get_info fails: a VMDK whose
 *                         extents are of different kinds)
 */
public record ImageInfo(String filename, String format, long virtualSize, long actualSize, long clusterSize,
                        boolean dirty, boolean encrypted, String backingFilename, String fullBackingFilename,
                        String backingFormat, Map<String, Object> formatSpecific, List<SnapshotInfo> snapshots,
                        boolean dirtyFlagShown) {

    public ImageInfo(String filename, String format, long virtualSize, long actualSize, long clusterSize,
                     boolean dirty, boolean encrypted, String backingFilename, String fullBackingFilename,
                     String backingFormat, Map<String, Object> formatSpecific, List<SnapshotInfo> snapshots) {
        this(filename, format, virtualSize, actualSize, clusterSize, dirty, encrypted, backingFilename,
                fullBackingFilename, backingFormat, formatSpecific, snapshots, true);
    }

    /** An internal snapshot, with qemu-img's fields. */
    public record SnapshotInfo(String id, String name, long vmStateSize, long dateSec, long dateNsec,
                               long vmClockNsec, long icount) {
    }
}
