package io.diskmorph.image;

/**
 * Process exit codes. Commands that mirror qemu-img (check, compare) keep
 * qemu-img's own codes for their results; these are the codes for failures.
 * The README documents the table.
 */
public final class ExitCodes {
    private ExitCodes() {
    }

    public static final int OK = 0;
    /** Generic failure: I/O error, or anything not listed below. */
    public static final int ERROR = 1;
    /** Command line or option error. */
    public static final int USAGE = 64;
    /** Image metadata is corrupt (opening or using it failed). */
    public static final int CORRUPT = 65;
    /** Image uses a feature diskmorph does not support, or the request cannot be expressed. */
    public static final int UNSUPPORTED = 66;
    /** Image is locked by another process (QEMU, qemu-nbd, ...). */
    public static final int IN_USE = 67;
    /** Not enough free disk space. */
    public static final int NO_SPACE = 68;
    /** Image has an unfinished in-place conversion; run recover. */
    public static final int INTERRUPTED_CONVERSION = 69;
    /** recover/rollback: the journal belongs to another file (the image was replaced, moved or copied). */
    public static final int JOURNAL_MISMATCH = 70;

    // qemu-img check results
    public static final int CHECK_CLEAN = 0;
    public static final int CHECK_FAILED = 1;
    public static final int CHECK_CORRUPT = 2;
    public static final int CHECK_LEAKS = 3;
    public static final int CHECK_UNSUPPORTED = 63;

    // qemu-img compare results
    public static final int COMPARE_SAME = 0;
    public static final int COMPARE_DIFFERENT = 1;
    public static final int COMPARE_ERROR = 2;
    /** An image's allocation could not be asked while walking it. */
    public static final int COMPARE_ALLOCATION_FAILED = 3;
    /** An image's guest data could not be read while walking it. */
    public static final int COMPARE_READ_FAILED = 4;
}
