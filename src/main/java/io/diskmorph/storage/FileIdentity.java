package io.diskmorph.storage;

/**
 * Which file a name refers to, to tell a file from one that replaced it
 * under the same name: the inode, and the birth time where the file system
 * records one (an inode number freed by a deletion is soon given to a new
 * file). The device is informative only: device numbers of device-mapper
 * and network volumes change between boots.
 *
 * @param birthNanos creation time in nanoseconds since the epoch, or {@link #UNKNOWN}
 * @param links      hard links to the inode
 */
public record FileIdentity(long device, long inode, long birthNanos, int links) {
    public static final long UNKNOWN = Long.MIN_VALUE;

    /** True when {@code other} names the same file (the device is not compared; see above). */
    public boolean sameFile(FileIdentity other) {
        return inode == other.inode
                && (birthNanos == UNKNOWN || other.birthNanos == UNKNOWN || birthNanos == other.birthNanos);
    }

    @Override
    public String toString() {
        return "inode " + inode + " on device " + (device >>> 8) + ":" + (device & 0xff)
                + (birthNanos == UNKNOWN ? "" : ", born " + java.time.Instant.ofEpochSecond(0, birthNanos));
    }
}
