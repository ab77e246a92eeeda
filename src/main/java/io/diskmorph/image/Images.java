package io.diskmorph.image;

import io.diskmorph.storage.FileStorage;
import io.diskmorph.storage.LockMode;
import io.diskmorph.storage.Storage;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Opening image files: locking, the interrupted-conversion guard, probing,
 * and backing chains resolved like QEMU (relative names against the
 * directory of the image that names them), with loop and depth limits and
 * no pseudo-protocols.
 */
public final class Images {
    /** Longest backing chain we follow; deeper chains are refused as hostile. */
    public static final int MAX_CHAIN_DEPTH = 256;
    /** Suffix of the sidecar journal an in-place conversion keeps next to the image while it runs. */
    public static final String JOURNAL_SUFFIX = ".dmjournal";
    /** Suffix of the rollback record a finished conversion keeps with --keep-rollback. */
    public static final String ROLLBACK_SUFFIX = ".dmrollback";

    private Images() {
    }

    /**
     * Path of the in-place conversion journal that belongs to {@code image}:
     * beside the file's real path (symbolic links resolved), so a conversion
     * run through a link (libvirt pools are full of them) is found through
     * every other name of the file but hard links (which in-place conversion
     * refuses).
     */
    public static Path journalPath(Path image) {
        Path real = realPath(image);
        return real.getParent().resolve(real.getFileName() + JOURNAL_SUFFIX);
    }

    /** The path with symbolic links resolved; as given (absolute) when it does not exist. */
    public static Path realPath(Path path) {
        try {
            return path.toRealPath();
        } catch (IOException e) {
            return path.toAbsolutePath();
        }
    }

    /** Opens {@code path} as the top of a chain. */
    public static DiskImage open(Path path, OpenOptions options) throws IOException {
        if (!options.allowInterrupted()) {
            Path journal = journalPath(path);
            if (Files.exists(journal)) {
                throw new InterruptedConversionException(path, journal);
            }
        }
        ChainOpener chain = new ChainOpener(options);
        return chain.openLayer(path, options.format(), options.readOnly(), options.lock(), 0);
    }

    /**
     * Backing files for an image that is opened on some other storage (the
     * in-place converter's views): resolved like QEMU against {@code top}'s
     * directory, read-only, with loop and depth limits; null when {@code top}
     * is null or backing files are not to be followed.
     */
    public static OpenContext.BackingOpener backingOpener(Path top, OpenOptions options) throws IOException {
        if (top == null || !options.followBacking()) {
            return null;
        }
        Path real = top.toRealPath();
        // a chain per open: the converter opens the source more than once (survey, then the write over the
        // journal's overlay), and a chain shared by both would take the second open's backing file for a loop
        return (child, name, format) -> {
            ChainOpener chain = new ChainOpener(options);
            chain.chain.add(real);
            return chain.openBacking(child, name, format);
        };
    }

    /**
     * Extent files for an image that is opened on some other storage (the
     * in-place converter's view of a file it holds locked): resolved and
     * checked as {@link #extentPath} says, opened read-only with shared
     * locks, like the extents of any image opened for reading.
     */
    public static OpenContext.ExtentOpener extentOpener() {
        return (image, name) -> openExtent(image, name, LockMode.SHARED);
    }

    /** Opens an image over an existing storage (tests, fuzzing): no locks, no backing files. */
    public static DiskImage open(Storage storage, String format, boolean readOnly) throws IOException {
        ImageFormat f = format != null ? FormatRegistry.byName(format) : FormatRegistry.probe(storage);
        return f.open(storage, new OpenContext(null, readOnly, null, format == null));
    }

    /**
     * QEMU's path_combine: a backing name that is absolute (or a protocol)
     * stays as is; a relative one is taken relative to the directory part of
     * the image filename as given (not canonicalised).
     */
    public static String fullBackingFilename(Path image, String backing) {
        if (backing == null) {
            return null;
        }
        if (backing.startsWith("/") || image == null || hasProtocol(backing)) {
            return backing;
        }
        String img = image.toString();
        int slash = img.lastIndexOf('/');
        return slash < 0 ? backing : img.substring(0, slash + 1) + backing;
    }

    /**
     * Where the file an image names as a part of itself (a VMDK extent) lives:
     * like a backing file name, relative to the directory of the image as
     * named (QEMU's path_combine) and without protocols; unlike one, it must
     * stay inside that directory: no absolute name, no ".." that leaves it.
     * An extent is read as guest data and a descriptor is text anyone can
     * write, so a descriptor must not turn /etc/shadow or a device into a
     * guest disk. (Symbolic links inside the directory are followed: they are
     * the directory owner's choice, not the descriptor's.)
     */
    public static Path extentPath(Path image, String name) throws ImageException {
        if (name.isEmpty()) {
            throw new CorruptImageException("extent file name", -1, "empty");
        }
        if (name.indexOf('\0') >= 0) {
            throw new CorruptImageException("extent file name", -1, "contains a NUL byte");
        }
        if (name.startsWith("file:") || hasProtocol(name)) {
            throw new UnsupportedFeatureException("extent file '" + printable(name) + "' names a protocol; "
                    + "diskmorph opens only plain file names inside the image's directory");
        }
        if (name.startsWith("/")) {
            throw new UnsupportedFeatureException("extent file '" + printable(name) + "' is an absolute path; "
                    + "diskmorph opens extent files only inside the directory of " + image + " (move the extent there "
                    + "and name it relatively in the descriptor)");
        }
        int depth = 0;
        for (String part : name.split("/")) {
            if (part.equals("..")) {
                if (--depth < 0) {
                    throw new UnsupportedFeatureException("extent file '" + printable(name) + "' leaves the "
                            + "directory of " + image + "; diskmorph opens extent files only inside it (move the "
                            + "extent there)");
                }
            } else if (!part.isEmpty() && !part.equals(".")) {
                depth++;
            }
        }
        return Path.of(fullBackingFilename(image, name));
    }

    private static Storage openExtent(OpenContext image, String name, LockMode lock) throws IOException {
        Path p = extentPath(image.path(), name);
        try {
            return FileStorage.open(p, true, lock);
        } catch (NoSuchFileException e) {
            throw new NoSuchFileException(p.toString(), null, "extent file not found");
        }
    }

    /** A name stored in an image, fit for a one-line message: control characters as '?', at most 200 characters. */
    static String printable(String name) {
        StringBuilder b = new StringBuilder(Math.min(name.length(), 200));
        for (int i = 0; i < name.length() && i < 200; i++) {
            char c = name.charAt(i);
            b.append(c < 0x20 || c == 0x7f ? '?' : c);
        }
        return name.length() > 200 ? b + "..." : b.toString();
    }

    static boolean hasProtocol(String name) {
        // QEMU: a colon before the first slash means a protocol prefix
        int colon = name.indexOf(':');
        int slash = name.indexOf('/');
        return colon > 0 && (slash < 0 || colon < slash) && isProtocolName(name, colon);
    }

    /** Whether name[0, end) is a protocol name: a letter, then letters, digits, '+', '.' or '-' (no regex:
     * compiling one costs every command start-up time). */
    private static boolean isProtocolName(String name, int end) {
        for (int i = 0; i < end; i++) {
            char c = name.charAt(i);
            boolean letter = c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z';
            if (!letter && (i == 0 || !(c >= '0' && c <= '9' || c == '+' || c == '.' || c == '-'))) {
                return false;
            }
        }
        return true;
    }

    /** Opens one layer after another, remembering the chain so loops end with an error. */
    private static final class ChainOpener {
        private final OpenOptions options;
        private final List<Path> chain = new ArrayList<>();

        ChainOpener(OpenOptions options) {
            this.options = options;
        }

        DiskImage openLayer(Path path, String format, boolean readOnly, LockMode lock, int depth)
                throws IOException {
            Path real;
            try {
                real = path.toRealPath();
            } catch (NoSuchFileException e) {
                throw new NoSuchFileException(path.toString(), null, depth == 0 ? "no such file"
                        : "backing file not found");
            }
            int at = chain.indexOf(real);
            if (at >= 0) {
                throw new CorruptImageException("backing chain", -1, "loop: " + path + " is already layer " + at
                        + " of the chain");
            }
            if (depth > MAX_CHAIN_DEPTH) {
                throw new UnsupportedFeatureException("backing chain deeper than " + MAX_CHAIN_DEPTH + " images at "
                        + path);
            }
            chain.add(real);
            Storage storage = FileStorage.open(path, readOnly, lock);
            try {
                ImageFormat f = format != null ? FormatRegistry.byName(format) : FormatRegistry.probe(storage);
                OpenContext ctx = new OpenContext(path, readOnly, options.followBacking() ? this::openBacking : null,
                        format == null, depth == 0 && options.forCheck(), this::openExtent);
                return f.open(storage, ctx);
            } catch (IOException | RuntimeException e) {
                storage.close();
                throw e;
            }
        }

        /** An extent file: read-only (it is data, never written through here), locked like a backing file. */
        private Storage openExtent(OpenContext image, String name) throws IOException {
            return Images.openExtent(image, name, options.lock() == LockMode.NONE ? LockMode.NONE : LockMode.SHARED);
        }

        private DiskImage openBacking(OpenContext child, String name, String format) throws IOException {
            if (name.isEmpty()) {
                throw new CorruptImageException("backing file name", -1, "empty");
            }
            String resolved = name;
            if (resolved.startsWith("file:")) {
                resolved = resolved.substring("file:".length());
            } else if (hasProtocol(resolved)) {
                throw new UnsupportedFeatureException("backing file '" + name
                        + "' uses a protocol; diskmorph only follows plain file names");
            }
            Path backingPath = Path.of(fullBackingFilename(child.path(), resolved));
            int depth = chain.size();
            LockMode lock = options.lock() == LockMode.NONE ? LockMode.NONE : LockMode.SHARED;
            return openLayer(backingPath, format, true, lock, depth);
        }
    }

    /**
     * Creates an image file through the format's layout code (qemu-img
     * create). The options are judged before the file is opened, since
     * creating truncates an existing file and a refused option must leave it
     * as it was; a failure after that removes a file that did not exist.
     */
    public static void create(Path path, ImageFormat format, CreateSpec spec) throws IOException {
        if (!format.canWrite()) {
            throw format.writingNotSupported();
        }
        if (format instanceof MeasurableFormat m) {
            m.measure(spec, null);
        } else {
            format.checkCreateSpec(spec);
        }
        boolean existed = Files.exists(path);
        Storage storage = FileStorage.create(path, LockMode.EXCLUSIVE);
        try {
            try (DiskImage img = format.create(storage, spec, new OpenContext(path, false, null, false))) {
                img.flush();
            }
        } catch (IOException | RuntimeException e) {
            storage.close();
            if (!existed) {
                Files.deleteIfExists(path); // no half-made image under the requested name
            }
            throw e;
        }
    }

    /** The virtual size of the backing file {@code name} of a new image at {@code image}; it must open. */
    public static long backingSize(Path image, String name, String format) throws IOException {
        Path p = Path.of(fullBackingFilename(image, name));
        try (DiskImage b = open(p, OpenOptions.forReading().withFormat(format))) {
            return b.virtualSize();
        }
    }
}
