package io.diskmorph.format.qcow2;

/** A check that cannot continue (qemu returns -errno): reported as "Check failed: strerror". */
final class CheckFailed extends Exception {
    static final String EIO = "Input/output error";
    static final String EFBIG = "File too large";
    static final String EINVAL = "Invalid argument";
    static final String ENOMEM = "Cannot allocate memory";

    final String errno;

    CheckFailed(String errno) {
        super(errno, null, false, false);
        this.errno = errno;
    }
}
