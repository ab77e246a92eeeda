/**
 * The only way bytes reach a file. {@link io.diskmorph.storage.Storage} is
 * the contract (positioned reads and writes, explicit syncs as ordering
 * points, sparse queries, hole punching; no memory-mapped writes);
 * {@link io.diskmorph.storage.FileStorage} implements it over a FileChannel
 * plus a native descriptor for lseek SEEK_DATA/SEEK_HOLE, fallocate, fstat,
 * statx and QEMU's OFD byte-range image locks (QEMU's block/file-posix.c
 * raw_apply_lock_bytes: the lock bytes 100+ and 200+), through the JNI shim
 * in src/main/native or java.lang.foreign. {@link io.diskmorph.storage.StorageDir}
 * is an image's directory, for sidecar files and directory syncs;
 * {@link io.diskmorph.storage.FileIdentity} tells a file from one that
 * replaced it under the same name.
 */
package io.diskmorph.storage;
