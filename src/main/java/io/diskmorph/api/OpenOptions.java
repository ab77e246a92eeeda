package io.diskmorph.api;

/**
 * How {@link Diskmorph#open(java.nio.file.Path, OpenOptions)} opens an
 * image. Start from {@link #readOnly()} or {@link #readWrite()} and change
 * one thing at a time with the {@code with} methods.
 *
 * @param format        the format, or null to probe the content (as qemu-img
 *                      does; a raw image written by a guest can look like
 *                      another format, so name it when you know it)
 * @param writable      open for guest writes (takes an exclusive lock)
 * @param forceShare    take and honour no locks (qemu-img's {@code -U}); only
 *                      for reading an image another process may be writing
 * @param followBacking open backing files; false reads fall through to zeros
 */
public record OpenOptions(String format, boolean writable, boolean forceShare, boolean followBacking) {

    /**
     * Probe the format, read only, shared lock, backing files followed.
     *
     * @return the options
     */
    public static OpenOptions readOnly() {
        return new OpenOptions(null, false, false, true);
    }

    /**
     * Probe the format, writable, exclusive lock, backing files followed.
     *
     * @return the options
     */
    public static OpenOptions readWrite() {
        return new OpenOptions(null, true, false, true);
    }

    /**
     * The same options with a named format.
     *
     * @param f a format name ("qcow2", "vmdk", ...), or null to probe
     * @return the new options
     */
    public OpenOptions withFormat(String f) {
        return new OpenOptions(f, writable, forceShare, followBacking);
    }

    /**
     * The same options taking no locks.
     *
     * @param share true to take and honour no locks
     * @return the new options
     */
    public OpenOptions withForceShare(boolean share) {
        return new OpenOptions(format, writable, share, followBacking);
    }

    /**
     * The same options with backing files followed or not.
     *
     * @param follow false to read through to zeros instead of backing files
     * @return the new options
     */
    public OpenOptions withFollowBacking(boolean follow) {
        return new OpenOptions(format, writable, forceShare, follow);
    }

    io.diskmorph.image.OpenOptions internal() {
        io.diskmorph.image.OpenOptions o = writable ? io.diskmorph.image.OpenOptions.forWriting()
                : io.diskmorph.image.OpenOptions.forReading();
        return o.withFormat(format).withFollowBacking(followBacking)
                .withLock(forceShare ? io.diskmorph.storage.LockMode.NONE : o.lock());
    }
}
