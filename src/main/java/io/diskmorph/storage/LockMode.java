package io.diskmorph.storage;

/** How an image file is locked against other users, following QEMU's permission model. */
public enum LockMode {
    /** No locking at all (qemu-img -U / --force-share). */
    NONE,
    /** A reader: needs consistent reads, lets nobody write or resize (like qemu-img info). */
    SHARED,
    /** A writer that tolerates no other user, reader or writer (in-place conversion, create, repair). */
    EXCLUSIVE
}
