package io.diskmorph.convert;

import io.diskmorph.storage.MemoryStorage;
import io.diskmorph.storage.Storage;
import io.diskmorph.storage.StorageDir;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

/**
 * A recording file system for crash-point tests: every write, truncate and
 * sync of every file, and every directory change and directory sync, goes
 * into one log. {@link #crashState} rebuilds what a disk could hold after a
 * power failure at any point of the log: synced writes survive; writes since
 * the file's last sync survive in full, not at all, reordered, partly, or with
 * the last one torn at a sector boundary; directory changes survive only
 * after a directory sync (or, unsynced, all of them or none).
 */
final class CrashSim {
    static final int SECTOR = 512;

    sealed interface Op permits Write, Punch, Sync, Truncate, Create, Delete, Rename, Link, DirSync {
    }

    record Write(int inode, long offset, byte[] data) implements Op {
    }

    /** fallocate(PUNCH_HOLE): the range reads zeros and holds no data; a crash keeps it whole or not at all. */
    record Punch(int inode, long offset, long length) implements Op {
    }

    record Sync(int inode) implements Op {
    }

    record Truncate(int inode, long size) implements Op {
    }

    record Create(String name, int inode) implements Op {
    }

    record Delete(String name) implements Op {
    }

    record Rename(String from, String to) implements Op {
    }

    /** A hard link: {@code to} becomes a second name of the file {@code from} names. */
    record Link(String from, String to) implements Op {
    }

    record DirSync() implements Op {
    }

    /** How unsynced file writes fare in a crash. */
    enum FileFate { NONE, ALL, TORN_LAST, REVERSED, RANDOM }

    final List<Op> log = new ArrayList<>();
    /** What {@link StorageDir#usableSpace()} reports (tests of the free-space check lower it). */
    long usableSpace = Long.MAX_VALUE / 4;
    /** What {@link StorageDir#identity} reports for a name, when not derived from the name. */
    final Map<String, io.diskmorph.storage.FileIdentity> identities = new HashMap<>();
    private final Map<String, Integer> liveNames = new HashMap<>();
    private final Map<Integer, MemoryStorage> liveInodes = new HashMap<>();
    private final Map<String, Integer> initialNames;
    private final Map<Integer, byte[]> initialInodes = new HashMap<>();
    private int nextInode;

    /** A file system holding the given files (durable, as after a sync). */
    CrashSim(Map<String, byte[]> files) {
        Map<String, Integer> names = new LinkedHashMap<>();
        for (var e : files.entrySet()) {
            int ino = nextInode++;
            names.put(e.getKey(), ino);
            initialInodes.put(ino, e.getValue());
            liveNames.put(e.getKey(), ino);
            liveInodes.put(ino, MemoryStorage.sparseOf(e.getKey(), e.getValue()));
        }
        initialNames = Collections.unmodifiableMap(names);
    }

    Storage file(String name) {
        Integer ino = liveNames.get(name);
        if (ino == null) {
            throw new IllegalArgumentException("no file " + name);
        }
        return new SimFile(name, ino, false);
    }

    StorageDir dir() {
        return new SimDir();
    }

    /** Files a crash after {@code prefix} logged operations could leave. */
    Map<String, byte[]> crashState(int prefix, FileFate fate, boolean dirOpsSurvive, long seed) {
        Map<Integer, MemoryStorage> durable = new HashMap<>();
        initialInodes.forEach((ino, bytes) -> durable.put(ino, MemoryStorage.sparseOf("ino" + ino, bytes)));
        Map<Integer, List<Op>> pending = new HashMap<>();
        Map<String, Integer> names = new HashMap<>(initialNames);
        List<Op> pendingDir = new ArrayList<>();
        for (int i = 0; i < prefix; i++) {
            Op op = log.get(i);
            switch (op) {
                case Write w -> pending.computeIfAbsent(w.inode, k -> new ArrayList<>()).add(w);
                case Truncate t -> pending.computeIfAbsent(t.inode, k -> new ArrayList<>()).add(t);
                case Punch p -> pending.computeIfAbsent(p.inode, k -> new ArrayList<>()).add(p);
                case Sync s -> {
                    MemoryStorage m = durable.computeIfAbsent(s.inode, k -> new MemoryStorage("ino" + k));
                    for (Op p : pending.getOrDefault(s.inode, List.of())) {
                        apply(m, p, 1.0);
                    }
                    pending.remove(s.inode);
                }
                case Create c -> pendingDir.add(c);
                case Delete d -> pendingDir.add(d);
                case Rename r -> pendingDir.add(r);
                case Link l -> pendingDir.add(l);
                case DirSync ds -> {
                    pendingDir.forEach(p -> applyDir(names, p));
                    pendingDir.clear();
                }
            }
        }
        Random rnd = new Random(seed);
        for (var e : pending.entrySet()) {
            MemoryStorage m = durable.computeIfAbsent(e.getKey(), k -> new MemoryStorage("ino" + k));
            List<Op> ops = e.getValue();
            switch (fate) {
                case NONE -> {
                }
                case ALL -> ops.forEach(p -> apply(m, p, 1.0));
                case TORN_LAST -> {
                    for (int i = 0; i < ops.size() - 1; i++) {
                        apply(m, ops.get(i), 1.0);
                    }
                    apply(m, ops.get(ops.size() - 1), 0.5);
                }
                case REVERSED -> {
                    for (int i = ops.size() - 1; i >= 0; i--) {
                        apply(m, ops.get(i), 1.0);
                    }
                }
                case RANDOM -> {
                    List<Op> shuffled = new ArrayList<>(ops);
                    Collections.shuffle(shuffled, rnd);
                    for (Op p : shuffled) {
                        if (rnd.nextBoolean()) {
                            apply(m, p, 1.0);
                        }
                    }
                }
            }
        }
        if (dirOpsSurvive) {
            pendingDir.forEach(p -> applyDir(names, p));
        }
        Map<String, byte[]> out = new HashMap<>();
        names.forEach((name, ino) -> {
            MemoryStorage m = durable.get(ino);
            out.put(name, m == null ? new byte[0] : m.toByteArray());
        });
        return out;
    }

    /** Applies a write (a {@code fraction} of its sectors, from the start: a torn write) or a truncate. */
    private static void apply(MemoryStorage m, Op op, double fraction) {
        try {
            switch (op) {
                case Write w -> {
                    int n = w.data.length;
                    if (fraction < 1.0) {
                        n = (int) (n / SECTOR * fraction) * SECTOR; // whole sectors only: a sector is atomic
                    }
                    if (n > 0) {
                        m.write(ByteBuffer.wrap(w.data, 0, n), w.offset);
                    }
                }
                case Truncate t -> {
                    if (fraction >= 1.0) {
                        m.truncate(t.size);
                    }
                }
                case Punch p -> {
                    if (fraction >= 1.0) {
                        m.punchHole(p.offset, p.length);
                    }
                }
                default -> throw new IllegalStateException(op.toString());
            }
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }

    private static void applyDir(Map<String, Integer> names, Op op) {
        switch (op) {
            case Create c -> names.put(c.name, c.inode);
            case Delete d -> names.remove(d.name);
            case Rename r -> {
                Integer ino = names.remove(r.from);
                if (ino != null) {
                    names.put(r.to, ino);
                }
            }
            case Link l -> {
                Integer ino = names.get(l.from);
                if (ino != null) {
                    names.put(l.to, ino);
                }
            }
            default -> throw new IllegalStateException(op.toString());
        }
    }

    /** A logged file. */
    private final class SimFile implements Storage {
        private final String name;
        private final int inode;
        private final boolean readOnly;

        SimFile(String name, int inode, boolean readOnly) {
            this.name = name;
            this.inode = inode;
            this.readOnly = readOnly;
        }

        private MemoryStorage m() {
            return liveInodes.get(inode);
        }

        @Override
        public void read(ByteBuffer dst, long position) throws IOException {
            m().read(dst, position);
        }

        @Override
        public void write(ByteBuffer src, long position) throws IOException {
            if (readOnly) {
                throw new IOException(name + ": read-only");
            }
            byte[] data = new byte[src.remaining()];
            src.duplicate().get(data);
            m().write(src, position);
            log.add(new Write(inode, position, data));
        }

        @Override
        public void sync() {
            log.add(new Sync(inode));
        }

        @Override
        public long size() {
            return m().size();
        }

        @Override
        public void truncate(long size) throws IOException {
            if (readOnly) {
                throw new IOException(name + ": read-only");
            }
            m().truncate(size);
            log.add(new Truncate(inode, size));
        }

        @Override
        public long nextData(long from) {
            return m().nextData(from);
        }

        @Override
        public long nextHole(long from) {
            return m().nextHole(from);
        }

        @Override
        public void punchHole(long offset, long length) throws IOException {
            if (readOnly) {
                throw new IOException(name + ": read-only");
            }
            m().punchHole(offset, length);
            log.add(new Punch(inode, offset, length));
        }

        @Override
        public long allocatedBytes() {
            return m().allocatedBytes();
        }

        @Override
        public boolean isReadOnly() {
            return readOnly;
        }

        @Override
        public String name() {
            return name;
        }

        @Override
        public void close() {
        }
    }

    /** The logged directory. */
    private final class SimDir implements StorageDir {
        @Override
        public boolean exists(String name) {
            return liveNames.containsKey(name);
        }

        @Override
        public Storage create(String name) throws IOException {
            Integer existing = liveNames.get(name);
            if (existing != null) {
                SimFile f = new SimFile(name, existing, false);
                f.truncate(0);
                return f;
            }
            int ino = nextInode++;
            liveInodes.put(ino, new MemoryStorage(name));
            liveNames.put(name, ino);
            log.add(new Create(name, ino));
            return new SimFile(name, ino, false);
        }

        @Override
        public Storage open(String name, boolean readOnly) throws IOException {
            Integer ino = liveNames.get(name);
            if (ino == null) {
                throw new java.nio.file.NoSuchFileException(name);
            }
            return new SimFile(name, ino, readOnly);
        }

        @Override
        public void delete(String name) {
            if (liveNames.remove(name) != null) {
                log.add(new Delete(name));
            }
        }

        @Override
        public void rename(String from, String to) throws IOException {
            Integer ino = liveNames.remove(from);
            if (ino == null) {
                throw new java.nio.file.NoSuchFileException(from);
            }
            liveNames.put(to, ino);
            log.add(new Rename(from, to));
        }

        @Override
        public void link(String existing, String name) throws IOException {
            Integer ino = liveNames.get(existing);
            if (ino == null) {
                throw new java.nio.file.NoSuchFileException(existing);
            }
            if (liveNames.containsKey(name)) {
                throw new java.nio.file.FileAlreadyExistsException(name);
            }
            liveNames.put(name, ino);
            log.add(new Link(existing, name));
        }

        @Override
        public void sync() {
            log.add(new DirSync());
        }

        /** Content-based, so a copy of a file system keeps the stamps of its files. */
        @Override
        public long changeStamp(String name) {
            Integer ino = liveNames.get(name);
            if (ino == null) {
                return -1;
            }
            java.util.zip.CRC32C crc = new java.util.zip.CRC32C();
            byte[] b = liveInodes.get(ino).toByteArray();
            crc.update(b);
            return crc.getValue() ^ ((long) b.length << 32);
        }

        @Override
        public long usableSpace() {
            return usableSpace;
        }

        /**
         * By name, so that the file systems rebuilt from crash states (whose
         * inode numbers are assigned anew) still hold "the same file"; tests
         * of replaced files set {@link #identities}.
         */
        @Override
        public io.diskmorph.storage.FileIdentity identity(String name) throws IOException {
            if (!liveNames.containsKey(name)) {
                throw new java.nio.file.NoSuchFileException(name);
            }
            var id = identities.get(name);
            return id != null ? id : new io.diskmorph.storage.FileIdentity(1, name.hashCode() & 0x7fffffffL,
                    io.diskmorph.storage.FileIdentity.UNKNOWN, 1);
        }
    }

    /** A content hash of a crash state, to test each distinct state once. */
    static String fingerprint(Map<String, byte[]> state) {
        StringBuilder sb = new StringBuilder();
        state.entrySet().stream().sorted(Map.Entry.comparingByKey()).forEach(e ->
                sb.append(e.getKey()).append(':').append(e.getValue().length).append(':')
                        .append(Arrays.hashCode(e.getValue())).append(';'));
        return sb.toString();
    }
}
