package io.diskmorph.copy;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.function.Consumer;

/**
 * The temporary name a copy is written under ({@code DST.part-<pid>}, next
 * to DST so the final rename is atomic and relative backing names resolve
 * the same; {@code DST.part-<pid>-<n>} for the n-th further copy of one
 * process, so two copies an embedding application runs at once never share
 * one), and the rename that publishes it. Until {@link #commit}, the
 * final name is untouched: an interrupted or failed copy never leaves a
 * half-written image there. An optional shutdown hook removes the part file
 * when the process is interrupted (SIGINT, SIGTERM) and says so.
 */
public final class PartFile {
    private final Path target;
    private final Path part;
    private Thread hook;
    private boolean finished; // guarded by this: committed or abandoned
    private boolean created; // guarded by this: the part file is ours to remove
    /** Part files named so far by this process: the first keeps the plain {@code .part-<pid>}. */
    private static final java.util.concurrent.atomic.AtomicLong NAMED = new java.util.concurrent.atomic.AtomicLong();

    private PartFile(Path target, Path part) {
        this.target = target;
        this.part = part;
    }

    /**
     * The part file for {@code target}; nothing is created yet. A symbolic
     * link is followed, so the copy replaces the file it names (as qemu-img
     * writes through it), not the link.
     */
    public static PartFile forTarget(Path target) throws IOException {
        Path real = target;
        for (int i = 0; i < 40 && Files.isSymbolicLink(real); i++) {
            real = real.resolveSibling(Files.readSymbolicLink(real));
        }
        long n = NAMED.getAndIncrement();
        Path part = real.resolveSibling(real.getFileName() + ".part-" + ProcessHandle.current().pid()
                + (n == 0 ? "" : "-" + n));
        return new PartFile(real, part);
    }

    public Path path() {
        return part;
    }

    public Path target() {
        return target;
    }

    /**
     * The part file now exists and is this copy's: a failure removes it from
     * here on (before, a refusal such as a lock held on it removes nothing).
     */
    public synchronized void created() {
        created = true;
    }

    /**
     * Removes the part file if the process is interrupted before the copy is
     * committed, then reports it through {@code message} (one line).
     */
    public synchronized void removeOnInterrupt(Consumer<String> message) {
        hook = new Thread(() -> {
            synchronized (this) {
                if (finished) {
                    return;
                }
                finished = true;
                if (!created) {
                    return;
                }
                try {
                    Files.deleteIfExists(part);
                    message.accept("interrupted: removed the unfinished copy " + part + "; " + target
                            + " was not written");
                } catch (IOException e) {
                    message.accept("interrupted: could not remove the unfinished copy " + part + ": "
                            + e.getMessage());
                }
            }
        }, "diskmorph-interrupt");
        Runtime.getRuntime().addShutdownHook(hook);
    }

    /**
     * Renames the part file to the target (replacing it). With {@code durable}
     * the caller has synced the file; the directory is synced after the
     * rename so the new name survives a power loss too.
     */
    public synchronized void commit(boolean durable) throws IOException {
        if (finished) {
            throw new IOException("copy to " + target + " was interrupted");
        }
        Files.move(part, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        finished = true;
        if (durable) {
            Path dir = target.toAbsolutePath().getParent();
            try (FileChannel ch = FileChannel.open(dir, StandardOpenOption.READ)) {
                ch.force(true);
            }
        }
        removeHook();
    }

    /** Deletes the part file after a failure (the target is untouched). */
    public synchronized void abandon() {
        if (!finished && created) { // a copy refused before it made its part file removes nothing
            try {
                Files.deleteIfExists(part);
            } catch (IOException e) {
                // the original failure is what the user needs to see; a stale part file is named by its pid
            }
        }
        finished = true;
        removeHook();
    }

    private void removeHook() {
        if (hook != null) {
            try {
                Runtime.getRuntime().removeShutdownHook(hook);
            } catch (IllegalStateException e) {
                // shutting down already: the hook sees finished and does nothing
            }
            hook = null;
        }
    }
}
