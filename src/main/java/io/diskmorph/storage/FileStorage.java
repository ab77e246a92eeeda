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
 * <p>A file this process creates, and without the JNI shim a read-only
 * open with shared locks, need no native call: they lock through the
 * {@link FileChannel} (fcntl record locks, which conflict with QEMU's OFD
 * locks both ways). Such a reader takes read locks and tests the other
 * bytes in the kernel's lock table ({@link LockTable}); with the shim a
 * reader takes OFD locks and tests with F_OFD_GETLK, like the writers and
 * QEMU. A created file takes write locks on all eight bytes,
 * which the kernel refuses while anyone holds any of them (on every file
 * system, also where /proc/locks does not show every holder: btrfs device
 * numbers, NFS, other PID namespaces) and which make every QEMU open fail.
 * The native descriptor is then opened only when a sparse query, hole
 * punching, the allocated size, allocation before writes or drop-behind
 * is asked for; it is opened by path, so a
 * created file is not renamed while it is held. Record locks belong to the
 * process and vanish when any descriptor of the file closes, so a created
 * file is never opened a second time by this process while it is held
 * ({@link #HELD_FOR_WRITING}), and it is grown through its own descriptor,
 * not a second one.
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

    /**
     * Files (device:inode) this process created and holds with record locks:
     * another open of one here is refused before it opens a descriptor,
     * whose closing would drop the holder's locks.
     */
    private static final java.util.Set<String> HELD_FOR_WRITING = java.util.concurrent.ConcurrentHashMap.newKeySet();

    private static final java.util.concurrent.atomic.AtomicBoolean NATIVE_PREPARING =
            new java.util.concurrent.atomic.AtomicBoolean();

    private final Path path;
    private final FileChannel channel;
    /** The descriptor of a writable file (the channel is its), through which the file is grown. */
    private final java.io.RandomAccessFile writable;
    private final boolean readOnly;
    /** Our entry in {@link #HELD_FOR_WRITING}, or null. */
    private String heldId;
    private int nativeFd = -1;
    /** Whether the native descriptor is still to be opened on first use (opens locked through the channel). */
    private boolean nativePending;
    private boolean sparseQueries;
    private boolean punchSupported = true;
    private boolean closed;
    /** Writes at least this large get their blocks allocated first ({@link #allocateBeforeLargeWrites}). */
    private static final int LARGE_WRITE = 256 << 10;
    private volatile boolean allocateLargeWrites;
    private int allocatedWrites;
    /** Blocks are allocated ahead of the writes in steps this large ({@link #allocateAhead}). */
    static final long AHEAD_STEP = 32L << 20;
    /** Where the blocks allocated ahead end; -1 when not allocating ahead. */
    private long allocatedAheadTo = -1;
    /** Drop-behind of written data ({@link #dropBehindWrites}), or null. */
    private DropBehind dropBehind;

    private FileStorage(Path path, FileChannel channel, java.io.RandomAccessFile writable, boolean readOnly) {
        this.path = path;
        this.channel = channel;
        this.writable = writable;
        this.readOnly = readOnly;
    }

    /**
     * Starts setting up the native calls on a background thread (once per
     * process). A command that will open an existing image for writing (OFD
     * locks through {@link NativeFs}) calls this first, and a storage whose
     * caller expects sparse queries ({@link #expectSparseQueries}), so the
     * set-up overlaps other start-up work instead of following it: about a
     * millisecond with the JNI shim, 40-130 ms of linking through
     * java.lang.foreign without it.
     */
    public static void prepareNativeCalls() {
        if (NATIVE_PREPARING.getAndSet(true)) {
            return;
        }
        Thread t = new Thread(() -> {
            boolean ignored = NativeFs.AVAILABLE; // class initialization loads or links the calls
        }, "diskmorph-native-setup");
        t.setDaemon(true);
        t.start();
    }

    /**
     * Opens an existing file. Its QEMU locks: open-file-description locks
     * through native calls (like QEMU), except that a shared read-only open
     * without the JNI shim takes record locks through the channel and tests
     * QEMU's bytes in /proc/locks, sparing it java.lang.foreign's set-up
     * (see {@link #lockWithoutNativeCalls}).
     */
    public static FileStorage open(Path path, boolean readOnly, LockMode lock) throws IOException {
        return open(path, readOnly, lock, !JniSyscalls.loaded());
    }

    /** {@link #open(Path, boolean, LockMode)}; tests choose the readers' lock path. */
    static FileStorage open(Path path, boolean readOnly, LockMode lock, boolean readersUseLockTable)
            throws IOException {
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
        synchronized (HELD_FOR_WRITING) { // no create registers the file between the test and the open
            refuseIfHeldForWriting(path);
            try {
                ch = FileChannel.open(path, opts);
            } catch (NoSuchFileException e) {
                throw new NoSuchFileException(path.toString(), null, "no such file");
            }
        }
        return init(path, ch, null, readOnly, lock, readersUseLockTable);
    }

    private static void refuseIfHeldForWriting(Path path) throws IOException {
        if (!HELD_FOR_WRITING.isEmpty() && Files.exists(path) && HELD_FOR_WRITING.contains(fileId(path))) {
            throw new ImageInUseException(path + ": image is in use (this process is writing it)");
        }
    }

    private static String fileId(Path path) throws IOException {
        java.util.Map<String, Object> id = Files.readAttributes(path, "unix:dev,ino");
        return id.get("dev") + ":" + id.get("ino");
    }

    private static boolean isBlockDevice(Path path) throws IOException {
        int mode = (Integer) Files.getAttribute(path, "unix:mode");
        return (mode & 0170000) == 0060000; // S_IFMT, S_IFBLK
    }

    /**
     * Creates a new file (or truncates an existing one to zero length) for
     * writing. Its locks are taken through the channel: a file being created
     * is usually written before anything else needs a native call, so the
     * native set-up stays off its path.
     */
    public static FileStorage create(Path path, LockMode lock) throws IOException {
        if (Files.isDirectory(path)) {
            throw new IOException(path + ": is a directory");
        }
        FileStorage s;
        synchronized (HELD_FOR_WRITING) { // the test, the open and the registration as one step
            refuseIfHeldForWriting(path);
            java.io.RandomAccessFile raf;
            try {
                raf = new java.io.RandomAccessFile(path.toFile(), "rw");
            } catch (java.io.FileNotFoundException e) {
                throw openFailure(path, e);
            }
            s = init(path, raf.getChannel(), raf, false, lock, false);
        }
        try {
            s.truncate(0);
        } catch (IOException e) {
            s.close();
            throw e;
        }
        return s;
    }

    /** RandomAccessFile reports every failure as "PATH (reason)": the reason, as NIO would report it. */
    private static IOException openFailure(Path path, java.io.FileNotFoundException e) {
        String m = String.valueOf(e.getMessage());
        int at = m.lastIndexOf(" (");
        String reason = at >= 0 && m.endsWith(")") ? m.substring(at + 2, m.length() - 1) : m;
        return switch (reason) {
            case "No such file or directory" -> new NoSuchFileException(path.toString(), null, "no such file");
            case "Permission denied" -> new java.nio.file.AccessDeniedException(path.toString());
            default -> new IOException(path + ": " + reason);
        };
    }

    private static FileStorage init(Path path, FileChannel ch, java.io.RandomAccessFile raf, boolean readOnly,
                                    LockMode lock, boolean readersUseLockTable) throws IOException {
        FileStorage s = new FileStorage(path, ch, raf, readOnly);
        try {
            boolean created = raf != null;
            if (created && s.lockCreatedFile(lock) || !created && readOnly && lock != LockMode.EXCLUSIVE
                    && readersUseLockTable && s.lockWithoutNativeCalls(lock)) {
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
     * The shared lock of a read-only open without native calls (used when
     * the JNI shim is missing, so the only native calls would cost
     * java.lang.foreign's 40-130 ms set-up): our read locks through the
     * channel, then the opposite bytes tested in the kernel's lock table.
     * Reading /proc/locks waits for an RCU grace period (10-20 ms here), and
     * the table misses holders on btrfs, NFS and in other PID namespaces,
     * which F_OFD_GETLK sees. False when the lock table cannot be read (the
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
                takeChannelLock(PERM_BASE + i, PERM_NAMES[i], true);
            }
            if ((unshared & (1 << i)) != 0) {
                takeChannelLock(SHARED_BASE + i, PERM_NAMES[i], true);
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

    /**
     * The locks of a file this process creates, without native calls:
     * exclusive takes write locks on every permission byte and every
     * not-shared byte, through the channel. Called with
     * {@link #HELD_FOR_WRITING} held. False: the native path is used.
     */
    private boolean lockCreatedFile(LockMode mode) throws IOException {
        if (mode == LockMode.NONE) {
            return true;
        }
        if (mode != LockMode.EXCLUSIVE) {
            return lockWithoutNativeCalls(mode);
        }
        String id = fileId(path);
        if (!HELD_FOR_WRITING.add(id)) {
            throw new ImageInUseException(path + ": image is in use (this process is writing it)");
        }
        heldId = id;
        for (int i = 0; i < 4; i++) {
            takeChannelLock(PERM_BASE + i, PERM_NAMES[i], false);
            takeChannelLock(SHARED_BASE + i, PERM_NAMES[i], false);
        }
        return true;
    }

    private void releaseHeld() {
        if (heldId != null) {
            HELD_FOR_WRITING.remove(heldId);
            heldId = null;
        }
    }

    /** A one-byte record lock through the channel; another holder (any lock on the byte for a write lock) is "in use". */
    private void takeChannelLock(long offset, String perm, boolean shared) throws IOException {
        try {
            if (channel.tryLock(offset, 1, shared) == null) {
                throw inUse(perm);
            }
        } catch (java.nio.channels.OverlappingFileLockException e) {
            // this process already holds it through another open of the same file: fine for a reader,
            // not for a writer
            if (!shared) {
                throw inUse(perm);
            }
        }
    }

    /**
     * Maps [offset, offset + length) of the file read-only ({@code offset}
     * page-aligned), through this storage's own descriptors (closing a
     * second one would drop the process's record locks on the file).
     */
    public MappedRegion mapReadOnly(long offset, long length) throws IOException {
        return MappedRegion.map(name(), channel, JniSyscalls.loaded() ? nativeFd() : -1, offset, length);
    }

    @Override
    public void expectSparseQueries() {
        if (nativePending) {
            prepareNativeCalls();
        }
    }

    /** Whether a native descriptor is open (tests: a read-only open needs none until asked). */
    boolean hasNativeDescriptor() {
        return nativeFd >= 0;
    }

    /** The native descriptor, opened now if the open deferred it (channel locks); -1 without native calls. */
    private int nativeFd() throws IOException {
        if (nativePending) {
            nativePending = false;
            if (NativeFs.AVAILABLE) {
                nativeFd = NativeFs.open(path, !readOnly);
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
        if (allocatedAheadTo >= 0) {
            if (position + src.remaining() > allocatedAheadTo) {
                allocateAhead(position, position + src.remaining());
            }
        } else if (allocateLargeWrites && src.remaining() >= LARGE_WRITE) {
            allocate(position, src.remaining());
        }
        long pos = position;
        // the writing thread's CPU time: a host fault on a new page-cache page stalls the thread inside
        // the kernel and counts there; time other threads ran (2 CPUs, a reader scanning) does not
        long start = dropBehind != null ? JniSyscalls.threadCpuNanos0() : 0;
        try {
            while (src.hasRemaining()) {
                pos += channel.write(src, pos);
            }
        } catch (IOException e) {
            if ("No space left on device".equals(e.getMessage())) {
                throw new IOException(name() + ": no space left on device", e); // which file the user must free
            }
            throw e;
        }
        if (dropBehind != null) {
            dropBehind(position, pos - position, JniSyscalls.threadCpuNanos0() - start);
        }
    }

    /**
     * For a copy's target: when writing into the page cache is slow (pages
     * that fault on the host), written data goes to disk as the copy goes on
     * and leaves the page cache some MiB behind the writes ({@link DropBehind}
     * says why and how it decides). {@code -Ddiskmorph.drop-behind=on} (or
     * {@code off}) fixes the choice. Only with the JNI shim (two
     * clock_gettime calls per write, a few sync_file_range and fadvise
     * calls per MiB when dropping); where the calls are not supported,
     * writes go on without it.
     */
    public void dropBehindWrites() {
        dropBehindWrites(switch (System.getProperty("diskmorph.drop-behind", "auto").toLowerCase(java.util.Locale.ROOT)) {
            case "on" -> DropBehind.Mode.ON;
            case "off" -> DropBehind.Mode.OFF;
            default -> DropBehind.Mode.AUTO;
        });
    }

    void dropBehindWrites(DropBehind.Mode mode) {
        if (readOnly || !JniSyscalls.loaded() || mode == DropBehind.Mode.OFF) {
            return;
        }
        try {
            int fd = nativeFd();
            if (fd < 0 || !NativeFs.syncFileRangeWorks(fd)) {
                return;
            }
            dropBehind = new DropBehind(new DropBehind.Calls() {
                @Override
                public void startWriteback(long offset, long length) {
                    NativeFs.startWriteback(fd, offset, length);
                }

                @Override
                public void waitAndDrop(long offset, long length) throws IOException {
                    NativeFs.waitAndDrop(fd, offset, length, name());
                }
            }, DropBehind.WINDOW, mode, System::nanoTime);
        } catch (IOException e) {
            dropBehind = null; // an optimisation only
        }
    }

    private void dropBehind(long position, long length, long nanos) throws IOException {
        try {
            dropBehind.written(position, length, nanos);
        } catch (NativeFs.ErrnoException e) {
            dropBehind = null; // the file failed: later writes (a failed copy's cleanup) just write
            throw writebackFailed(name(), e);
        }
    }

    /** A writeback error of the file: its data did not reach the disk. */
    static IOException writebackFailed(String name, NativeFs.ErrnoException e) {
        return e.errno == NativeFs.ENOSPC || e.errno == NativeFs.EDQUOT
                ? new IOException(name + ": no space left on device", e)
                : new IOException(name + ": writing the data to disk failed (errno " + e.errno + ")", e);
    }

    /** Bytes under writeback not yet dropped, or -1 without drop-behind (tests). */
    long bytesUnderWriteback() {
        return dropBehind == null ? -1 : dropBehind.bytesUnderWriteback();
    }

    /** Whether written data is dropped behind now (tests). */
    boolean droppingBehind() {
        return dropBehind != null && dropBehind.dropping();
    }

    /**
     * For a file written mostly with large writes of new data (a copy's
     * target): on ext4, each write of 256 KiB or more first allocates its
     * blocks with fallocate. ext4 then skips the delayed-allocation
     * bookkeeping of every page it copies in: writing 1.4 GB into the page
     * cache took 15-25 % less time here (bench/alloc-writes.sh), and the
     * file ends up with the same data blocks. Not elsewhere:
     * on btrfs, for one, a preallocated file is written without
     * copy-on-write or compression. Only with the JNI shim (one cheap call
     * per write); where fallocate fails, writes go on without it.
     */
    public void allocateBeforeLargeWrites() {
        if (readOnly || !JniSyscalls.loaded()) {
            return;
        }
        try {
            int fd = nativeFd();
            allocateLargeWrites = fd >= 0 && NativeFs.filesystemType(fd, name()) == NativeFs.EXT4_SUPER_MAGIC;
        } catch (IOException e) {
            allocateLargeWrites = false; // an optimisation only
        }
    }

    /**
     * For a file filled from the front without holes (a qcow2 copy target:
     * every cluster is appended and written whole): on ext4, blocks are
     * allocated past the end in steps of 32 MiB ahead of the writes
     * (fallocate FALLOC_FL_KEEP_SIZE, the size unchanged), so that every
     * write, small ones too, skips the delayed-allocation bookkeeping:
     * writing 1.6 GB in 64 KiB writes took 0.123 s instead of 0.151 s here,
     * and 2 MiB writes 0.121 s instead of 0.130 s with an allocation per
     * write ({@link #allocateBeforeLargeWrites}). A write past the allocated
     * end allocates from where it starts, so a gap it leaves stays a hole.
     * {@link #close} gives back the blocks past the end. Only with the JNI
     * shim; where fallocate fails, writes go on without it.
     */
    public void allocateAhead() {
        if (readOnly || !JniSyscalls.loaded()) {
            return;
        }
        try {
            int fd = nativeFd();
            if (fd >= 0 && NativeFs.filesystemType(fd, name()) == NativeFs.EXT4_SUPER_MAGIC) {
                allocatedAheadTo = channel.size();
            }
        } catch (IOException e) {
            allocatedAheadTo = -1; // an optimisation only
        }
    }

    private void allocateAhead(long position, long end) {
        long from = Math.max(allocatedAheadTo, position & -4096L);
        long to = Math.addExact(end, AHEAD_STEP - 1) / AHEAD_STEP * AHEAD_STEP;
        try {
            NativeFs.fallocate(nativeFd(), NativeFs.FALLOC_FL_KEEP_SIZE, from, to - from, name());
            allocatedAheadTo = to;
            allocatedWrites++;
        } catch (IOException e) {
            // no space for the step (the write itself may still fit and reports it if not), or not supported
            releaseAhead();
            allocatedAheadTo = -1;
        }
    }

    /** Gives back blocks allocated ahead past the end of the file (a truncate to its own size). */
    private void releaseAhead() {
        if (allocatedAheadTo < 0) {
            return;
        }
        try {
            long size = channel.size();
            if (allocatedAheadTo > size) {
                NativeFs.truncate(nativeFd(), size, name());
            }
        } catch (IOException e) {
            // the blocks stay allocated past the end: space only, the content is unaffected
        }
    }

    /** Writes whose blocks were allocated first (tests). */
    int allocatedWrites() {
        return allocatedWrites;
    }

    private void allocate(long position, int length) {
        try {
            int fd = nativeFd();
            if (fd < 0) {
                allocateLargeWrites = false;
                return;
            }
            NativeFs.fallocate(fd, 0, position, length, name());
            allocatedWrites++;
        } catch (IOException e) {
            // not supported here, or no space (which the write itself then reports): plain writes
            allocateLargeWrites = false;
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
            allocatedAheadTo = Math.min(allocatedAheadTo, size); // the blocks past it went too
        } else if (size > cur) {
            // FileChannel.truncate cannot grow, and a one-byte write at the end would allocate a
            // block: grow with ftruncate, through our own descriptor when we have one (closing a
            // second one would drop the record locks of a created file)
            if (writable != null) {
                writable.setLength(size);
            } else {
                try (var raf = new java.io.RandomAccessFile(path.toFile(), "rw")) {
                    raf.setLength(size);
                }
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
        if (punchSupported && nativeFd() >= 0) {
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
        releaseAhead();
        closed = true;
        nativePending = false; // no descriptor is opened for a closed storage
        try {
            if (writable != null) {
                writable.close(); // and its channel
            } else {
                channel.close();
            }
        } finally {
            releaseHeld();
            if (nativeFd >= 0) {
                NativeFs.close(nativeFd); // releases our OFD locks
                nativeFd = -1;
            }
        }
    }
}
