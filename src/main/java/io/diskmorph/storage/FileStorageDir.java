package io.diskmorph.storage;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;

/** A {@link StorageDir} over a real directory. Sidecars are not locked: the image's lock covers them. */
public final class FileStorageDir implements StorageDir {
    private final Path dir;

    public FileStorageDir(Path dir) {
        this.dir = dir.toAbsolutePath();
    }

    /** The directory holding {@code file}. */
    public static FileStorageDir of(Path file) {
        return new FileStorageDir(file.toAbsolutePath().getParent());
    }

    public Path path(String name) {
        return dir.resolve(name);
    }

    @Override
    public boolean exists(String name) {
        return Files.exists(dir.resolve(name));
    }

    @Override
    public Storage create(String name) throws IOException {
        return FileStorage.create(dir.resolve(name), LockMode.NONE);
    }

    @Override
    public Storage open(String name, boolean readOnly) throws IOException {
        return FileStorage.open(dir.resolve(name), readOnly, LockMode.NONE);
    }

    @Override
    public void delete(String name) throws IOException {
        Files.deleteIfExists(dir.resolve(name));
    }

    @Override
    public void rename(String from, String to) throws IOException {
        Files.move(dir.resolve(from), dir.resolve(to), StandardCopyOption.ATOMIC_MOVE,
                StandardCopyOption.REPLACE_EXISTING);
    }

    @Override
    public boolean isSymbolicLink(String name) {
        return Files.isSymbolicLink(dir.resolve(name));
    }

    @Override
    public void link(String existing, String name) throws IOException {
        Files.createLink(dir.resolve(name), dir.resolve(existing));
    }

    /** Java has no directory fsync call; opening the directory for reading and forcing it does one on Linux. */
    @Override
    public void sync() throws IOException {
        try (FileChannel ch = FileChannel.open(dir, StandardOpenOption.READ)) {
            ch.force(true);
        }
    }

    @Override
    public long changeStamp(String name) throws IOException {
        return Files.getLastModifiedTime(dir.resolve(name)).to(java.util.concurrent.TimeUnit.NANOSECONDS);
    }

    @Override
    public long usableSpace() throws IOException {
        return Files.getFileStore(dir).getUsableSpace();
    }

    @Override
    public FileIdentity identity(String name) throws IOException {
        Path p = dir.resolve(name);
        java.util.Map<String, Object> a = Files.readAttributes(p, "unix:dev,ino,nlink");
        return new FileIdentity(((Number) a.get("dev")).longValue(), ((Number) a.get("ino")).longValue(),
                NativeFs.birthTime(p), ((Number) a.get("nlink")).intValue());
    }
}
