package io.diskmorph.image;

import io.diskmorph.storage.LockMode;

/**
 * How {@link Images#open} opens an image file.
 *
 * @param format          forced format name (-f), or null to probe
 * @param readOnly        open without write access
 * @param lock            lock taken on the top image (backing files always get SHARED, or NONE with forceShare)
 * @param followBacking   open backing files when reads fall through (false: --no-backing)
 * @param allowInterrupted open even if an in-place conversion journal is pending (recover/rollback only)
 * @param forCheck        open the top image for {@code check} (QEMU's BDRV_O_CHECK): the driver
 *                        opens what it can check and repair, even images it would refuse otherwise
 */
public record OpenOptions(String format, boolean readOnly, LockMode lock, boolean followBacking,
                          boolean allowInterrupted, boolean forCheck) {

    public OpenOptions(String format, boolean readOnly, LockMode lock, boolean followBacking,
                       boolean allowInterrupted) {
        this(format, readOnly, lock, followBacking, allowInterrupted, false);
    }

    public static OpenOptions forReading() {
        return new OpenOptions(null, true, LockMode.SHARED, true, false);
    }

    public static OpenOptions forWriting() {
        return new OpenOptions(null, false, LockMode.EXCLUSIVE, true, false);
    }

    public OpenOptions withFormat(String f) {
        return new OpenOptions(f, readOnly, lock, followBacking, allowInterrupted, forCheck);
    }

    public OpenOptions withLock(LockMode l) {
        return new OpenOptions(format, readOnly, l, followBacking, allowInterrupted, forCheck);
    }

    public OpenOptions withFollowBacking(boolean b) {
        return new OpenOptions(format, readOnly, lock, b, allowInterrupted, forCheck);
    }

    public OpenOptions withAllowInterrupted(boolean b) {
        return new OpenOptions(format, readOnly, lock, followBacking, b, forCheck);
    }

    public OpenOptions withForCheck(boolean b) {
        return new OpenOptions(format, readOnly, lock, followBacking, allowInterrupted, b);
    }
}
