package io.diskmorph.storage;

import java.io.IOException;

/**
 * The directory an image lives in, for its sidecar files (the in-place
 * conversion journal). Creating, renaming or removing a file is durable only
 * after {@link #sync()}: a crash can otherwise lose the directory entry even
 * when the file's content was synced.
 */
public interface StorageDir {

    boolean exists(String name) throws IOException;

    /** Creates (or truncates) a file for writing. */
    Storage create(String name) throws IOException;

    Storage open(String name, boolean readOnly) throws IOException;

    /** Removes a file; no error when it does not exist. */
    void delete(String name) throws IOException;

    /** Atomically renames, replacing {@code to} if it exists. */
    void rename(String from, String to) throws IOException;

    /**
     * Gives the file {@code existing} a second name {@code name} (a hard
     * link; {@code name} must not exist). Durable only after {@link #sync()}.
     */
    default void link(String existing, String name) throws IOException {
        throw new IOException("hard links are not supported here");
    }

    /** True when {@code name} is a symbolic link (not followed). */
    default boolean isSymbolicLink(String name) throws IOException {
        return false;
    }

    /** Makes entry changes (create, delete, rename) durable: fsync of the directory. */
    void sync() throws IOException;

    /**
     * A stamp that changes whenever the file's content changes (modification
     * time in nanoseconds for real files), used to tell whether an image was
     * written since a conversion.
     */
    long changeStamp(String name) throws IOException;

    /** Free bytes available to this process on the directory's file system. */
    long usableSpace() throws IOException;

    /** Which file {@code name} refers to now (see {@link FileIdentity}). */
    FileIdentity identity(String name) throws IOException;
}
