package io.diskmorph.copy;

import io.diskmorph.image.CompressedClusterWriter;
import io.diskmorph.image.CreateSpec;
import io.diskmorph.image.DiskImage;
import io.diskmorph.image.FormatRegistry;
import io.diskmorph.image.ImageFormat;
import io.diskmorph.image.Images;
import io.diskmorph.image.InvalidRequestException;
import io.diskmorph.image.OpenContext;
import io.diskmorph.image.OpenOptions;
import io.diskmorph.image.UnsupportedFeatureException;
import io.diskmorph.storage.FileStorage;
import io.diskmorph.storage.LockMode;
import io.diskmorph.storage.Storage;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Copy conversion to a new file (qemu-img convert SRC DST): opens the source
 * chain, creates the target with its format's {@code create} under a
 * temporary name next to DST ({@link PartFile}), copies with
 * {@link CopyEngine}, and renames it to DST once complete. A failure
 * removes the temporary file and leaves DST (and of course SRC) as it was.
 */
public final class CopyConversion {
    private CopyConversion() {
    }

    /** How the target is written back, as qemu-img's -t. */
    public enum Cache {
        /** qemu-img convert's default: no flush; the target is complete, but only durable once the OS writes it. */
        UNSAFE,
        /** Synced before the rename, and the rename synced: durable when the command returns. */
        WRITEBACK
    }

    /**
     * One copy conversion.
     *
     * @param options       target -o options (backing_file/backing_fmt may appear here instead of -B/-F)
     * @param backing       -B: the target's backing file name, stored as given (null: none)
     * @param backingFormat -F: its format (required with a backing file, as in qemu-img 7.2)
     */
    public record Request(Path source, String sourceFormat, Path target, String targetFormat,
                          Map<String, String> options, String backing, String backingFormat,
                          CopyEngine.Settings settings, Cache cache) {
        public Request {
            options = Map.copyOf(options);
        }
    }

    /**
     * What a finished copy made.
     *
     * @param sourceFormat the source's format (probed when not given)
     * @param virtualSize  the target's virtual size (the source's, rounded up to a sector)
     * @param backing      the target's backing file name as stored, or null
     * @param backingFormat its format, or null
     * @param written      what the copy asked the target to write
     */
    public record Result(String sourceFormat, long virtualSize, String backing, String backingFormat,
                         CopyEngine.Written written) {
    }

    /** Runs the conversion; {@code part} is the temporary file the target is built in (see {@link PartFile}). */
    public static Result run(Request r, PartFile part, CopyEngine.Progress progress) throws IOException {
        try {
            return copy(r, part, progress);
        } finally {
            part.abandon(); // after a commit: nothing left to do
        }
    }

    private static Result copy(Request r, PartFile part, CopyEngine.Progress progress) throws IOException {
        ImageFormat format = FormatRegistry.byName(r.targetFormat());
        if (!format.canWrite()) {
            throw format.writingNotSupported();
        }
        Map<String, String> opts = new LinkedHashMap<>(r.options());
        String backing = r.backing() != null ? r.backing() : opts.remove("backing_file");
        String backingFormat = r.backingFormat() != null ? r.backingFormat() : opts.remove("backing_fmt");
        opts.remove("backing_file");
        opts.remove("backing_fmt");
        if (backing != null && backingFormat == null) {
            throw new InvalidRequestException("use of a backing file requires an explicit backing format (-F)");
        }
        if (r.settings().compress()) {
            String prealloc = opts.getOrDefault("preallocation", "off");
            if (!prealloc.equals("off")) {
                throw new InvalidRequestException("compression and preallocation are not supported at the same time");
            }
        }
        if (Files.exists(r.target()) && Files.isSameFile(r.source(), r.target())) {
            throw new InvalidRequestException(r.target() + " is the source image; to convert it inside its own "
                    + "file use --in-place");
        }
        try (DiskImage source = Images.open(r.source(), OpenOptions.forReading().withFormat(r.sourceFormat()));
             DestinationLock lock = DestinationLock.take(r.target())) {
            long targetBackingSize = -1;
            if (backing != null) {
                Path b = Path.of(Images.fullBackingFilename(r.target(), backing));
                if (Files.exists(r.target()) && Files.exists(b) && Files.isSameFile(b, r.target())) {
                    throw new InvalidRequestException("the backing file " + backing + " is the target itself");
                }
                targetBackingSize = backingSize(b, backingFormat);
            }
            long size = Math.addExact(source.virtualSize(), 511) & ~511L;
            CreateSpec spec = new CreateSpec(size, opts, backing, backingFormat);
            CopyEngine.Written written;
            long virtualSize;
            try (FileStorage file = FileStorage.create(part.path(), LockMode.EXCLUSIVE)) {
                part.created();
                if (format.fillsFileWithoutHoles(opts)) {
                    file.allocateAhead();
                } else {
                    file.allocateBeforeLargeWrites();
                }
                file.dropBehindWrites();
                Storage storage = r.cache() == Cache.UNSAFE ? new UnsafeCacheStorage(file) : file;
                // relative backing names resolve against DST as the user named it, like qemu-img
                OpenContext ctx = new OpenContext(r.target(), false,
                        Images.backingOpener(part.path(), OpenOptions.forReading()), false);
                try (DiskImage target = format.create(storage, spec, ctx)) {
                    if (r.settings().compress() && !(target instanceof CompressedClusterWriter)) {
                        throw new UnsupportedFeatureException("compression is not supported for format "
                                + format.name());
                    }
                    written = CopyEngine.copy(source, target, r.settings(), backing != null, targetBackingSize,
                            progress);
                    target.flush();
                    virtualSize = target.virtualSize();
                    if (r.settings().compress()) {
                        alignEnd(target.storage());
                    }
                    if (r.cache() == Cache.WRITEBACK) {
                        file.sync();
                    }
                }
            }
            part.commit(r.cache() == Cache.WRITEBACK);
            return new Result(source.format().name(), virtualSize, backing, backing != null ? backingFormat : null,
                    written);
        }
    }

    /**
     * Compressed data is packed at byte granularity; like qemu-img (its final
     * zero-length compressed write), the file is then grown to a whole
     * sector so sector-based readers reach the last stream.
     */
    private static void alignEnd(Storage s) throws IOException {
        long len = s.size();
        if (len % 512 != 0) {
            s.truncate(Math.addExact(len, 511) & ~511L);
        }
    }

    /** Virtual size of the target's backing file, opened like qemu-img does to check it. */
    private static long backingSize(Path backing, String format) throws IOException {
        try (DiskImage b = Images.open(backing, OpenOptions.forReading().withFormat(format))) {
            return b.virtualSize();
        }
    }

    /**
     * The existing DST, locked like a writer would lock it until the copy
     * replaces it: a DST in use by QEMU is refused before anything is written.
     */
    private static final class DestinationLock implements AutoCloseable {
        private final Storage held;

        private DestinationLock(Storage held) {
            this.held = held;
        }

        static DestinationLock take(Path target) throws IOException {
            if (!Files.isRegularFile(target)) {
                return new DestinationLock(null);
            }
            return new DestinationLock(FileStorage.open(target, true, LockMode.EXCLUSIVE));
        }

        @Override
        public void close() throws IOException {
            if (held != null) {
                held.close();
            }
        }
    }
}
