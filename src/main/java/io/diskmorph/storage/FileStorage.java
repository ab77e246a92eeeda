package io.diskmorph.storage;

import io.diskmorph.image.ImageException;
import io.diskmorph.image.ImageInUseException;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.EnumSet;
import java.util.Set;

/**
 * A {@link Storage} over a regular file: data through a {@link FileChannel},
 * sparse queries, hole punching and QEMU-compatible locks through a second
 * native descriptor of the same file ({@link NativeFs}).
 *
 * <p>Locks: QEMU (block/file-posix.c) takes OFD read locks on byte
 * 100 + i for each permission i it holds (0 consistent read, 1 write,
 * 2 write-unchanged, 3 resize) and on byte 200 + i for each permission it
 * refuses to share. Before locking, it tests the opposite bytes for
 * conflicting holders. We follow the same scheme, so QEMU and diskmorph see
 * each other's locks.
 *
 * <p>A read-only open with shared locks needs no native call: it takes its
 * read locks through the {@link FileChannel} (fcntl record locks, which
 * conflict with QEMU's OFD locks both ways) and tests the other bytes in
 * the kernel's lock table ({@link LockTable}). The native descriptor is then
 * opened only when a sparse query or the allocated size is asked for.
 */
public final class FileStorage implements Storage {
    private static final int PERM_BASE = 100;
    private static final int SHARED_BASE = 200;
    private static final int PERM_CONSISTENT_READ = 0;
    private static final int PERM_WRITE = 1;
    private static final int PERM_WRITE_UNCHANGED = 2;
    private static final int PERM_RESIZE = 3;
    private static final String[] PERM_NAMES = {"consistent read", "write", "write unchanged", "resize"};
    /** A shared (read-only) open takes consistent read and refuses to share write and resize, like qemu-img. */
    private static final int SHARED_WANTED = 1 << PERM_CONSISTENT_READ;
    private static final int SHARED_UNSHARED = (1 << PERM_WRITE) | (1 << PERM_RESIZE);

    private final Path path;
    private final FileChannel channel;
    private final boolean readOnly;
    private int nativeFd = -1;
    /** Whether the native descriptor is still to be opened on first use (read-only opens). */
    private boolean nativePending;
    private boolean sparseQueries;
    private boolean punchSupported = true;
    private boolean closed;

    private FileStorage(Path path, FileChannel channel, boolean readOnly) {
        this.path = path;
        this.channel = channel;
        this.readOnly = readOnly;
    }

    /**
     * Starts setting up the native calls on a background thread. A command
     * that will open a file for writing (which takes QEMU's OFD locks through
     * {@link NativeFs}) calls this first, so the set-up, about 60 ms of
     * linking, overlaps its other start-up work instead of following it.
     */
    public static void prepareNativeCalls() {
        Thread t = new Thread(() -> {
            boolean ignored = NativeFs.AVAILABLE; // class initialization links the downcall
        }, "diskmorph-native-setup");
        t.setDaemon(true);
        t.start();
    }

    /** Opens an existing file. */
    public static FileStorage open(Path path, boolean readOnly, LockMode lock) throws IOException {
        Set<StandardOpenOption> opts = readOnly ? EnumSet.of(StandardOpenOption.READ)
                : EnumSet.of(StandardOpenOption.READ, StandardOpenOption.WRITE);
        if (Files.isDirectory(path)) {
            throw new IOException(path + ": is a directory");
        }
        if (Files.exists(path) && !Files.isRegularFile(path) && !isBlockDevice(path)) {
            // a backing file name inside an image can name a FIFO (opening it blocks until some
            // process writes to it; qemu-img hangs there) or a character device (/dev/zero: no size,
            // endless or changing content): neither holds an image
            throw new ImageException(path + ": not a regular file or block device");
        }
        FileChannel ch;
        try {
            ch = FileChannel.open(path, opts);
        } catch (NoSuchFileException e) {
            throw new NoSuchFileException(path.toString(), null, "no such file");
        }
        return init(path, ch, readOnly, lock);
    }

    private static boolean isBlockDevice(Path path) throws IOException {
        int mode = (Integer) Files.getAttribute(path, "unix:mode");
        return (mode & 0170000) == 0060000; // S_IFMT, S_IFBLK
    }

    /** Creates a new file (or truncates an existing one to zero length) for writing. */
    public static FileStorage create(Path path, LockMode lock) throws IOException {
        FileChannel ch = FileChannel.open(path, StandardOpenOption.READ, StandardOpenOption.WRITE,
                StandardOpenOption.CREATE);
        FileStorage s = init(path, ch, false, lock);
        try {
            s.truncate(0);
        } catch (IOException e) {
            s.close();
            throw e;
        }
        return s;
    }

    private static FileStorage init(Path path, FileChannel ch, boolean readOnly, LockMode lock) throws IOException {
        FileStorage s = new FileStorage(path, ch, readOnly);
        try {
            if (readOnly && lock != LockMode.EXCLUSIVE && s.lockWithoutNativeCalls(lock)) {
                s.nativePending = true;
                s.sparseQueries = true;
                return s;
            }
            if (NativeFs.AVAILABLE) {
                s.nativeFd = NativeFs.open(path, !readOnly);
                s.sparseQueries = true;
            }
            s.lock(lock);
        } catch (IOException e) {
            s.close();
            throw e;
        }
        return s;
    }

    private void lock(LockMode mode) throws IOException {
        if (mode == LockMode.NONE || nativeFd < 0) {
            return;
        }
        int wanted; // permissions we take
        int unshared; // permissions we refuse to others
        if (mode == LockMode.SHARED) {
            wanted = SHARED_WANTED;
            unshared = SHARED_UNSHARED;
        } else {
            wanted = 0b1111;
            unshared = 0b1111;
        }
        // Take our locks first, then test: two racing openers then both see each other.
        for (int i = 0; i < 4; i++) {
            if ((wanted & (1 << i)) != 0 && !NativeFs.setLock(nativeFd, NativeFs.F_RDLCK, PERM_BASE + i, 1, name())) {
                throw inUse(PERM_NAMES[i]);
            }
            if ((unshared & (1 << i)) != 0
                    && !NativeFs.setLock(nativeFd, NativeFs.F_RDLCK, SHARED_BASE + i, 1, name())) {
                throw inUse(PERM_NAMES[i]);
            }
        }
        for (int i = 0; i < 4; i++) {
            // someone refuses to share a permission we take
            if ((wanted & (1 << i)) != 0 && NativeFs.wouldConflict(nativeFd, NativeFs.F_WRLCK, SHARED_BASE + i, 1, name())) {
                throw inUse(PERM_NAMES[i]);
            }
            // someone holds a permission we refuse to share
            if ((unshared & (1 << i)) != 0 && NativeFs.wouldConflict(nativeFd, NativeFs.F_WRLCK, PERM_BASE + i, 1, name())) {
                throw inUse(PERM_NAMES[i]);
            }
        }
    }

    /**
     * The shared lock of a read-only open without java.lang.foreign: our
     * read locks through the channel, then the opposite bytes tested in the
     * kernel's lock table. False when the lock table cannot be read (the
     * native path is used instead).
     */
    private boolean lockWithoutNativeCalls(LockMode mode) throws IOException {
        if (mode == LockMode.NONE) {
            return true;
        }
        if (!LockTable.available() || !Files.isRegularFile(path)) {
            return false;
        }
        int wanted = SHARED_WANTED;
        int unshared = SHARED_UNSHARED;
        // Take our locks first, then test: two racing openers then both see each other.
        for (int i = 0; i < 4; i++) {
            if ((wanted & (1 << i)) != 0) {
                takeSharedLock(PERM_BASE + i, PERM_NAMES[i]);
            }
            if ((unshared & (1 << i)) != 0) {
                takeSharedLock(SHARED_BASE + i, PERM_NAMES[i]);
            }
        }
        LockTable table = LockTable.read();
        if (table == null) {
            return false;
        }
        java.util.Map<String, Object> id = Files.readAttributes(path, "unix:dev,ino");
        long dev = ((Number) id.get("dev")).longValue();
        long ino = ((Number) id.get("ino")).longValue();
        for (int i = 0; i < 4; i++) {
            // someone refuses to share a permission we take, or holds one we refuse to share (the bytes
            // tested are never the ones this open locks)
            if ((wanted & (1 << i)) != 0 && table.anyLockOn(dev, ino, SHARED_BASE + i)
                    || (unshared & (1 << i)) != 0 && table.anyLockOn(dev, ino, PERM_BASE + i)) {
                throw inUse(PERM_NAMES[i]);
            }
        }
        return true;
    }

    private void takeSharedLock(long offset, String perm) throws IOException {
        try {
            if (channel.tryLock(offset, 1, true) == null) {
                throw inUse(perm);
            }
        } catch (java.nio.channels.OverlappingFileLockException e) {
            // this process already holds it through another open of the same file
        }
    }

    /** Whether a native descriptor is open (tests: a read-only open needs none until asked). */
    boolean hasNativeDescriptor() {
        return nativeFd >= 0;
    }

    /** The native descriptor, opened now if a read-only open deferred it; -1 without native calls. */
    private int nativeFd() throws IOException {
        if (nativePending) {
            nativePending = false;
            if (NativeFs.AVAILABLE) {
                nativeFd = NativeFs.open(path, false);
            } else {
                sparseQueries = false;
            }
        }
        return nativeFd;
    }

    private ImageInUseException inUse(String perm) {
        return new ImageInUseException(path + ": image is in use by another process (failed to get \"" + perm
                + "\" lock; is QEMU, qemu-nbd or qemu-io using it?)");
    }

    public Path path() {
        return path;
    }

    @Override
    public void read(ByteBuffer dst, long position) throws IOException {
        if (position < 0) {
            throw new IOException(name() + ": negative read offset " + position);
        }
        long pos = position;
        while (dst.hasRemaining()) {
            int n = channel.read(dst, pos);
            if (n < 0) {
                // past EOF: zeros, like a sparse tail
                while (dst.hasRemaining()) {
                    dst.put((byte) 0);
                }
                return;
            }
            pos += n;
        }
    }

    @Override
    public void write(ByteBuffer src, long position) throws IOException {
        checkWritable();
        if (position < 0) {
            throw new IOException(name() + ": negative write offset " + position);
        }
        long pos = position;
        while (src.hasRemaining()) {
            pos += channel.write(src, pos);
        }
    }

    @Override
    public void sync() throws IOException {
        if (!readOnly) {
            channel.force(true);
        }
    }

    @Override
    public long size() throws IOException {
        return channel.size();
    }

    @Override
    public void truncate(long size) throws IOException {
        checkWritable();
        long cur = channel.size();
        if (size < cur) {
            channel.truncate(size);
        } else if (size > cur) {
            // FileChannel.truncate cannot grow; a one-byte write at the end would
            // allocate a block, so grow through RandomAccessFile semantics instead.
            try (var raf = new java.io.RandomAccessFile(path.toFile(), "rw")) {
                raf.setLength(size);
            }
        }
    }

    @Override
    public long nextData(long from) throws IOException {
        long size = size();
        if (from >= size) {
            return size;
        }
        int fd = nativeFd();
        if (!sparseQueries) {
            return from;
        }
        try {
            long r = NativeFs.lseek(fd, from, NativeFs.SEEK_DATA, name());
            return r < 0 ? size : Math.min(r, size);
        } catch (NativeFs.ErrnoException e) {
            if (e.errno == NativeFs.EINVAL || e.errno == NativeFs.EOPNOTSUPP) {
                sparseQueries = false;
                return from;
            }
            throw e;
        }
    }

    @Override
    public long nextHole(long from) throws IOException {
        long size = size();
        if (from >= size) {
            return size;
        }
        int fd = nativeFd();
        if (!sparseQueries) {
            return size;
        }
        try {
            long r = NativeFs.lseek(fd, from, NativeFs.SEEK_HOLE, name());
            return r < 0 ? size : Math.min(r, size);
        } catch (NativeFs.ErrnoException e) {
            if (e.errno == NativeFs.EINVAL || e.errno == NativeFs.EOPNOTSUPP) {
                sparseQueries = false;
                return size;
            }
            throw e;
        }
    }

    @Override
    public void punchHole(long offset, long length) throws IOException {
        checkWritable();
        if (length <= 0) {
            return;
        }
        if (nativeFd >= 0 && punchSupported) {
            try {
                NativeFs.fallocate(nativeFd, NativeFs.FALLOC_FL_PUNCH_HOLE | NativeFs.FALLOC_FL_KEEP_SIZE, offset,
                        length, name());
                return;
            } catch (NativeFs.ErrnoException e) {
                if (e.errno != NativeFs.EOPNOTSUPP && e.errno != NativeFs.EINVAL) {
                    throw e;
                }
                punchSupported = false;
            }
        }
        // No hole punching here: write zeros within the current size.
        long end = Math.min(Math.addExact(offset, length), size());
        ByteBuffer zeros = ByteBuffer.allocate((int) Math.min(1 << 20, Math.max(0, end - offset)));
        for (long pos = offset; pos < end; pos += zeros.capacity()) {
            zeros.clear().limit((int) Math.min(zeros.capacity(), end - pos));
            write(zeros, pos);
        }
    }

    @Override
    public long allocatedBytes() throws IOException {
        int fd = nativeFd();
        return fd >= 0 ? NativeFs.allocatedBytes(fd, name()) : -1;
    }

    @Override
    public boolean isReadOnly() {
        return readOnly;
    }

    @Override
    public String name() {
        return path.toString();
    }

    private void checkWritable() throws IOException {
        if (readOnly) {
            throw new IOException(name() + ": opened read-only");
        }
    }

    @Override
    public void close() throws IOException {
        if (closed) {
            return;
        }
        closed = true;
        try {
            channel.close();
        } finally {
            if (nativeFd >= 0) {
                NativeFs.close(nativeFd); // releases our OFD locks
                nativeFd = -1;
            }
        }
    }
}
