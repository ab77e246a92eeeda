package io.diskmorph.api;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * What {@code diskmorph info} (and {@code qemu-img info}) tells of one
 * image; the names follow qemu-img's JSON fields.
 *
 * @param filename            the image's file name as given
 * @param format              the format name ("qcow2", "vmdk", "vpc", ...)
 * @param virtualSize         the guest disk's size in bytes
 * @param actualSize          bytes the file occupies on disk, or -1 when unknown
 * @param clusterSize         the format's allocation unit in bytes (cluster, grain, block), 0 when it has none
 * @param dirty               the image is marked dirty (qcow2 lazy refcounts, VHDX log, QED need-check)
 * @param encrypted           the image is encrypted
 * @param backingFilename     the backing file name as stored, or null
 * @param fullBackingFilename the backing file resolved as QEMU resolves it, or null
 * @param backingFormat       the backing file's format as stored, or null
 * @param formatSpecific      qemu-img's "format-specific" data (without "type"): an unmodifiable tree of
 *                            maps, lists, strings, numbers and booleans; empty when the format has none
 * @param snapshots           internal snapshots, oldest first; empty when none
 */
public record ImageDetails(String filename, String format, long virtualSize, long actualSize, long clusterSize,
                           boolean dirty, boolean encrypted, String backingFilename, String fullBackingFilename,
                           String backingFormat, Map<String, Object> formatSpecific, List<Snapshot> snapshots) {

    /**
     * Copies the collections, so the value cannot change.
     *
     * @param filename            see the record
     * @param format              see the record
     * @param virtualSize         see the record
     * @param actualSize          see the record
     * @param clusterSize         see the record
     * @param dirty               see the record
     * @param encrypted           see the record
     * @param backingFilename     see the record
     * @param fullBackingFilename see the record
     * @param backingFormat       see the record
     * @param formatSpecific      see the record
     * @param snapshots           see the record
     */
    public ImageDetails {
        formatSpecific = formatSpecific == null ? Map.of() : frozenMap(formatSpecific);
        snapshots = List.copyOf(snapshots);
    }

    static ImageDetails of(io.diskmorph.image.ImageInfo i) {
        List<Snapshot> snaps = new ArrayList<>();
        for (io.diskmorph.image.ImageInfo.SnapshotInfo s : i.snapshots()) {
            snaps.add(new Snapshot(s.id(), s.name(), s.vmStateSize(), s.dateSec(), s.dateNsec(), s.vmClockNsec(),
                    s.icount()));
        }
        return new ImageDetails(i.filename(), i.format(), i.virtualSize(), i.actualSize(), i.clusterSize(),
                i.dirty(), i.encrypted(), i.backingFilename(), i.fullBackingFilename(), i.backingFormat(),
                i.formatSpecific(), snaps);
    }

    /** A deep copy whose maps keep their order and allow no change (values may be null, as in JSON). */
    private static Map<String, Object> frozenMap(Map<String, ?> m) {
        Map<String, Object> copy = new LinkedHashMap<>();
        m.forEach((k, v) -> copy.put(k, frozen(v)));
        return Collections.unmodifiableMap(copy);
    }

    @SuppressWarnings("unchecked")
    private static Object frozen(Object v) {
        if (v instanceof Map<?, ?> m) {
            return frozenMap((Map<String, ?>) m);
        }
        if (v instanceof List<?> l) {
            List<Object> copy = new ArrayList<>(l.size());
            l.forEach(e -> copy.add(frozen(e)));
            return Collections.unmodifiableList(copy);
        }
        return v;
    }
}
