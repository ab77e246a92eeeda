package io.diskmorph.api;

/**
 * An internal snapshot of a qcow2 image, with qemu-img info's fields.
 *
 * @param id          the snapshot's ID
 * @param name        its name
 * @param vmStateSize bytes of saved VM state
 * @param dateSec     creation time, seconds since the epoch
 * @param dateNsec    nanoseconds of the creation time
 * @param vmClockNsec the guest clock at the snapshot, nanoseconds
 * @param icount      the instruction counter, or -1 when not recorded
 */
public record Snapshot(String id, String name, long vmStateSize, long dateSec, long dateNsec, long vmClockNsec,
                       long icount) {
}
