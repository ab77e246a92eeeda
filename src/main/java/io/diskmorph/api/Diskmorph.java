package io.diskmorph.api;

import io.diskmorph.convert.ConversionFile;
import io.diskmorph.convert.ConversionPlan;
import io.diskmorph.convert.InPlaceConverter;
import io.diskmorph.convert.Recovery;
import io.diskmorph.copy.CopyConversion;
import io.diskmorph.copy.CopyEngine;
import io.diskmorph.copy.Measure;
import io.diskmorph.copy.PartFile;
import io.diskmorph.image.CheckReport;
import io.diskmorph.image.CreateSpec;
import io.diskmorph.image.DiskImage;
import io.diskmorph.image.FormatRegistry;
import io.diskmorph.image.ImageCompare;
import io.diskmorph.image.ImageFormat;
import io.diskmorph.image.Images;
import io.diskmorph.image.UnsupportedFeatureException;
import io.diskmorph.storage.LockMode;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;

/**
 * diskmorph's operations: what the {@code diskmorph} command does, callable
 * from Java. Every method is a whole operation (it opens, locks, works and
 * closes), except {@link #open}, which gives an {@link Image} to read and
 * write. Failures are {@link DiskmorphException}s whose types and
 * {@link DiskmorphException#exitCode() exit codes} are the command's; a
 * refused operation leaves every file as it was. Arguments may not be null
 * unless a parameter says so.
 *
 * <p>Operations that write (in-place conversion, copy, create, check with
 * a repair, recover, rollback) run on a thread of their own while the
 * caller waits: interrupting the caller does not reach the files (an
 * interrupted {@code FileChannel} closes, which would leave a conversion
 * half done); it requests the operation's cancellation instead, where it has
 * one, and the caller's interrupt status is set again when the operation has
 * ended. A {@link ProgressListener} that throws is called no more, and a
 * conversion or copy it watched is cancelled as by its {@link Cancellation}
 * (its exception is then the cause of the {@link ConversionCancelledException}).
 * A JVM that exits while an operation runs does not wait for it: an
 * application that stops on a signal should cancel and wait for the
 * operation in its shutdown hook (see {@code examples/inplace-convert}).
 *
 * <pre>{@code
 * InPlacePlan plan = Diskmorph.plan(Path.of("disk.vmdk"), InPlaceRequest.to("qcow2"));
 * if (plan.enoughSpace()) {
 *     Diskmorph.execute(plan, (phase, done, total) -> System.out.println(phase + " " + done + "/" + total),
 *             new Cancellation());
 * }
 * }</pre>
 */
public final class Diskmorph {
    private Diskmorph() {
    }

    /**
     * The library's version (the Maven project's version).
     *
     * @return a version such as "0.5.0"
     */
    public static String version() {
        try (InputStream in = Diskmorph.class.getResourceAsStream("diskmorph.properties")) {
            Properties p = new Properties();
            if (in != null) {
                p.load(in);
            }
            return p.getProperty("version", "unknown");
        } catch (IOException e) {
            return "unknown";
        }
    }

    /**
     * The formats diskmorph knows, in the order it probes them: those it
     * reads and writes and those it names only to refuse them.
     *
     * @return format names ("raw", "qcow2", "qed", "vmdk", "vhdx", "vpc", "vdi", "qcow", "parallels", ...)
     */
    public static List<String> formats() {
        List<String> names = new ArrayList<>();
        for (ImageFormat f : FormatRegistry.formats()) {
            names.add(f.name());
        }
        return List.copyOf(names);
    }

    /**
     * Opens an image file read-only, probing its format.
     *
     * @param path the image file
     * @return the open image
     * @throws DiskmorphException when the file cannot be opened or is not an image diskmorph reads
     */
    public static Image open(Path path) throws DiskmorphException {
        return open(path, OpenOptions.readOnly());
    }

    /**
     * Opens an image file.
     *
     * @param path    the image file
     * @param options format, writable, locks, backing files
     * @return the open image
     * @throws DiskmorphException when the file cannot be opened or is not an image diskmorph reads
     */
    public static Image open(Path path, OpenOptions options) throws DiskmorphException {
        return Failures.translating(() -> new Image(Images.open(path, options.internal())));
    }

    /**
     * Opens an image kept in a storage of the caller's (no locks, no backing
     * files: an image with a backing file reads through to zeros). The image
     * closes the storage when it is closed; when opening fails the storage
     * stays the caller's to close.
     *
     * @param storage the image's bytes
     * @param options the format (null probes) and whether to write; locks and backing files do not apply
     * @return the open image
     * @throws DiskmorphException when the storage is not an image diskmorph reads
     */
    public static Image open(ImageStorage storage, OpenOptions options) throws DiskmorphException {
        return Failures.translating(() -> new Image(Images.open(new StorageAdapter(storage), options.format(),
                !options.writable())));
    }

    /**
     * What {@code diskmorph info} shows of an image file.
     *
     * @param path the image file
     * @return the details
     * @throws DiskmorphException when the file cannot be opened or read
     */
    public static ImageDetails info(Path path) throws DiskmorphException {
        try (Image image = open(path)) {
            return image.details();
        }
    }

    /**
     * Checks an image's consistency and optionally repairs it (qemu-img
     * check). Backing files are not opened. A repair takes an exclusive lock.
     *
     * @param path   the image file
     * @param format its format, or null to probe
     * @param repair what may be changed
     * @return the counters and messages; {@link CheckResult#supported()} is false for a format without
     *         checks (raw)
     * @throws DiskmorphException when the image cannot be opened (a check that fails part way returns a
     *                            result with {@link CheckResult#failure()} set instead)
     */
    public static CheckResult check(Path path, String format, Repair repair) throws DiskmorphException {
        return check(path, OpenOptions.readOnly().withFormat(format), repair, ProgressListener.NONE);
    }

    /**
     * {@link #check(Path, String, Repair)} with the format and locking of
     * {@code options} ({@link OpenOptions#forceShare()}: take no lock, as
     * qemu-img's {@code -U}; only without a repair), telling {@code progress}
     * how far it got: the phases "tables" (guest bytes whose table entries
     * were judged), "refcounts" (qcow2: host bytes whose counts were
     * compared), "grains" (VMDK), "repair" (announced), as
     * {@code check --progress=json} prints them. Backing files are never
     * opened; {@link OpenOptions#writable()} is ignored: a repair opens for
     * writing. The command reports a failure to open the image as exit code
     * 1 (qemu-img check's); here it keeps its type.
     *
     * @param path     the image file
     * @param options  the format (null probes) and whether to take locks
     * @param repair   what may be changed
     * @param progress told each phase and its bytes
     * @return the counters and messages
     * @throws DiskmorphException when the image cannot be opened, or a repair is asked without locks
     */
    public static CheckResult check(Path path, OpenOptions options, Repair repair, ProgressListener progress)
            throws DiskmorphException {
        if (options.forceShare() && repair != Repair.NONE) {
            throw new InvalidRequestException(path + ": a repair takes an exclusive lock; it cannot run with "
                    + "forceShare", null);
        }
        LockMode lock = options.forceShare() ? LockMode.NONE
                : repair == Repair.NONE ? LockMode.SHARED : LockMode.EXCLUSIVE;
        io.diskmorph.image.OpenOptions o = new io.diskmorph.image.OpenOptions(options.format(),
                repair == Repair.NONE, lock, false, false, true);
        Failures.GuardedListener listener = new Failures.GuardedListener(progress, null);
        return Failures.uninterruptibly(() -> {
            try (DiskImage image = Images.open(path, o)) {
                CheckReport r;
                try {
                    r = image.check(repair.internal(), listener);
                } catch (UnsupportedFeatureException e) {
                    return CheckResult.unsupported(image.format().name());
                }
                return CheckResult.of(image.format().name(), r);
            }
        }, null);
    }

    /**
     * Compares the guest content of two image files (qemu-img compare), each
     * through its backing chain, probing their formats.
     *
     * @param first  one image file
     * @param second the other
     * @return the verdict
     * @throws DiskmorphException when an image cannot be opened or walked
     */
    public static CompareResult compare(Path first, Path second) throws DiskmorphException {
        try (Image a = open(first); Image b = open(second)) {
            return compare(a, b, false, ProgressListener.NONE);
        }
    }

    /**
     * Compares the guest content of two open images (qemu-img compare).
     *
     * @param first    one image
     * @param second   the other
     * @param strict   also fail on different sizes and on allocation differences (qemu-img's {@code -s})
     * @param progress told the guest bytes walked (phase "compare"), of the larger virtual size
     * @return the verdict
     * @throws DiskmorphException when an image cannot be walked ({@link CompareFailedException}: exit 3 or 4,
     *                            the message naming the image); the command reports its other failures as
     *                            exit code 2 (qemu-img compare's), the API keeps their types
     */
    public static CompareResult compare(Image first, Image second, boolean strict, ProgressListener progress)
            throws DiskmorphException {
        Failures.GuardedListener listener = new Failures.GuardedListener(progress, null);
        return Failures.translating(() -> {
            ImageCompare.Result r;
            try {
                r = ImageCompare.compare(first.internal(), second.internal(), strict,
                        (done, total) -> listener.update("compare", done, total));
            } catch (ImageCompare.Failure f) {
                Image failed = f.image() == 1 ? first : second;
                throw new CompareFailedException(failed.internal().storage().name() + ": " + f.getMessage(), f,
                        f.exitCode(), f.image());
            }
            return new CompareResult(r.identical(), r.identical() ? -1 : r.mismatchOffset(), r.message());
        });
    }

    /**
     * Creates a new image file (qemu-img create) through the same layout code
     * the in-place targets use. The options are judged before the file is
     * touched; a failure leaves no new file.
     *
     * @param path    the new image file (an existing file is replaced)
     * @param request format, size, options, backing file
     * @return the new image's details
     * @throws DiskmorphException when the request is refused or the file cannot be written
     */
    public static ImageDetails create(Path path, CreateRequest request) throws DiskmorphException {
        ImageFormat f = Failures.translating(() -> FormatRegistry.byName(request.format()));
        Failures.uninterruptibly(() -> {
            Map<String, String> opts = new java.util.LinkedHashMap<>(request.options());
            // as the command: backing_file / backing_fmt may come as -o options
            String backing = request.backingFile() != null ? request.backingFile() : opts.remove("backing_file");
            String backingFormat = request.backingFormat() != null ? request.backingFormat()
                    : opts.remove("backing_fmt");
            opts.remove("backing_file");
            opts.remove("backing_fmt");
            long size = request.virtualSize();
            if (backing != null) { // the backing file must exist and open, as with qemu-img
                long backingSize = Images.backingSize(path, backing, backingFormat);
                size = size < 0 ? backingSize : size;
            } else if (size < 0) {
                throw new io.diskmorph.image.InvalidRequestException("missing size (needed unless a backing "
                        + "file gives it)");
            }
            Images.create(path, f, new CreateSpec(size, opts, backing, backingFormat));
            return null;
        }, null);
        return details(path, f.name());
    }

    /** The details of an image this API just wrote, opened as the format it wrote (never probed). */
    private static ImageDetails details(Path path, String format) throws DiskmorphException {
        try (Image image = open(path, OpenOptions.readOnly().withFormat(format).withFollowBacking(false))) {
            return image.details();
        }
    }

    /**
     * What a new image of {@code targetFormat} holding an image's content
     * would take (qemu-img measure), and optionally what converting the
     * image in place would take.
     *
     * @param path         the image file
     * @param sourceFormat its format, or null to probe
     * @param targetFormat the format to measure for
     * @param options      the target's {@code -o} options
     * @param inPlace      also plan the in-place conversion (nothing is written)
     * @return the figures
     * @throws DiskmorphException when the image cannot be read or the format cannot be measured
     */
    public static MeasureResult measure(Path path, String sourceFormat, String targetFormat,
                                        Map<String, String> options, boolean inPlace) throws DiskmorphException {
        return measure(path, sourceFormat, targetFormat, options, inPlace, ProgressListener.NONE);
    }

    /**
     * {@link #measure(Path, String, String, Map, boolean)}, telling
     * {@code progress} the guest bytes walked (phase "measure") and, with
     * {@code inPlace}, the planner's phases.
     *
     * @param path         the image file
     * @param sourceFormat its format, or null to probe
     * @param targetFormat the format to measure for
     * @param options      the target's {@code -o} options
     * @param inPlace      also plan the in-place conversion (nothing is written)
     * @param progress     told each phase and its bytes
     * @return the figures
     * @throws DiskmorphException when the image cannot be read or the format cannot be measured
     */
    public static MeasureResult measure(Path path, String sourceFormat, String targetFormat,
                                        Map<String, String> options, boolean inPlace, ProgressListener progress)
            throws DiskmorphException {
        Failures.GuardedListener listener = new Failures.GuardedListener(progress, null);
        return Failures.translating(() -> MeasureResult.of(Measure.image(path, sourceFormat, targetFormat, options,
                inPlace, listener)));
    }

    /**
     * What a new empty image would take (qemu-img measure --size).
     *
     * @param virtualSize  the guest disk's size in bytes
     * @param targetFormat the format
     * @param options      its {@code -o} options
     * @return the figures
     * @throws DiskmorphException when the format cannot be measured or an option is refused
     */
    public static MeasureResult measure(long virtualSize, String targetFormat, Map<String, String> options)
            throws DiskmorphException {
        return Failures.translating(() -> MeasureResult.of(Measure.empty(virtualSize, targetFormat, options)));
    }

    /**
     * Copies an image into a new file of another (or the same) format
     * (qemu-img convert). The target is built under a temporary name beside
     * {@code target} ({@code TARGET.part-<pid>}, {@code -<n>} added for a
     * further copy of the process) and appears under its name only when
     * complete; a failure or a cancellation leaves no target, a JVM that
     * halts during the copy leaves the part file.
     *
     * @param source   the image file to copy, through its backing chain
     * @param target   the new image file
     * @param request  formats, options, compression, sparseness, durability
     * @param progress told the bytes of data copied (phase "copy")
     * @param cancel   asked each time a chunk of data (2 MiB at most) has been written; null when only an
     *                 interrupt of the calling thread should stop the copy
     * @return the new image's details and what was written
     * @throws DiskmorphException when the copy is refused or fails, {@link ConversionCancelledException}
     *                            when it was cancelled
     */
    public static CopyResult copy(Path source, Path target, CopyRequest request, ProgressListener progress,
                                  Cancellation cancel) throws DiskmorphException {
        if (request.minSparse() < 0 || request.minSparse() % 512 != 0 || request.minSparse() > CopyEngine.MAX_SPARSE) {
            throw new InvalidRequestException("minSparse must be a multiple of 512 up to 16M (0 disables zero "
                    + "detection and fully allocates the target), not " + request.minSparse(), null);
        }
        if (request.parallel() < 1 || request.parallel() > CopyEngine.MAX_PARALLEL) {
            throw new InvalidRequestException("parallel must be between 1 and " + CopyEngine.MAX_PARALLEL, null);
        }
        io.diskmorph.convert.Cancellation stop = cancel != null ? cancel.internal()
                : new io.diskmorph.convert.Cancellation();
        Failures.GuardedListener listener = new Failures.GuardedListener(progress, stop);
        // the engine counts its progress total with a walk of its own: only when someone listens
        CopyEngine.Progress p = progress == ProgressListener.NONE && cancel == null
                ? (done, total) -> stopIfRequested(stop)
                : (done, total) -> {
                    listener.update("copy", done, total);
                    stopIfRequested(stop);
                };
        CopyConversion.Result done = Failures.uninterruptibly(() -> {
                CopyConversion.Request r = new CopyConversion.Request(source, request.sourceFormat(), target,
                        request.targetFormat(), request.options(), request.backingFile(), request.backingFormat(),
                        new CopyEngine.Settings(request.minSparse(), request.compress(), request.parallel(),
                                request.outOfOrder()),
                        request.durable() ? CopyConversion.Cache.WRITEBACK : CopyConversion.Cache.UNSAFE);
                try {
                    return CopyConversion.run(r, PartFile.forTarget(target), p);
                } catch (CopyStopped s) {
                    throw new ConversionCancelledException(source + ": copy to " + target + " cancelled ("
                            + stop.reason() + "); no target was left", listener.failure(), null);
                }
            }, stop);
        return new CopyResult(details(target, request.targetFormat()), done.sourceFormat(),
                done.written().dataBytes(), done.written().compressedBytes(), done.written().zeroBytes());
    }

    private static void stopIfRequested(io.diskmorph.convert.Cancellation stop) {
        if (stop.requested()) {
            throw new CopyStopped();
        }
    }

    /** Unwinds a copy whose cancellation was requested (the copy engine removes its partial target). */
    private static final class CopyStopped extends RuntimeException {
        private static final long serialVersionUID = 1L;

        CopyStopped() {
            super("cancelled", null, false, false);
        }
    }

    /**
     * Plans an in-place conversion without writing anything (the dry run):
     * what stays, what moves and why, the new metadata, the journal and the
     * extra space it needs. Takes a shared lock while planning.
     *
     * @param path    the image file
     * @param request the conversion
     * @return the plan, to inspect and to pass to {@link #execute}
     * @throws DiskmorphException when the conversion is refused (the message says why)
     */
    public static InPlacePlan plan(Path path, InPlaceRequest request) throws DiskmorphException {
        return plan(path, request, ProgressListener.NONE);
    }

    /**
     * {@link #plan(Path, InPlaceRequest)}, telling {@code progress} the
     * planner's phases ("check", "survey", "plan").
     *
     * @param path     the image file
     * @param request  the conversion
     * @param progress told each phase
     * @return the plan
     * @throws DiskmorphException when the conversion is refused (the message says why)
     */
    public static InPlacePlan plan(Path path, InPlaceRequest request, ProgressListener progress)
            throws DiskmorphException {
        Failures.GuardedListener listener = new Failures.GuardedListener(progress, null);
        return Failures.translating(() -> {
            try (ConversionFile file = ConversionFile.open(path, LockMode.SHARED, backing(path, request))) {
                Instant modified = Files.getLastModifiedTime(path).toInstant();
                return InPlacePlan.of(path, request, modified, InPlaceConverter.plan(file, request.internal(),
                        listener));
            }
        });
    }

    /**
     * Carries out a plan made by {@link #plan}, if it still holds: under the
     * exclusive lock the image's length and modification time must be the
     * plan's, and planning again must give the same figures (what stays,
     * what moves, the new metadata, the journal, the extra space, the notes);
     * otherwise nothing is written and {@link InvalidRequestException} says
     * to plan again. Guest data written since without changing the layout
     * does not stale a plan: it stays where it is all the same.
     *
     * @param plan     the plan
     * @param progress told each phase and the bytes of the phases that write or move data
     * @param cancel   asked at the conversion's safe points; null when only an interrupt of the calling
     *                 thread should stop it
     * @return the plan as carried out, with the time of each phase
     * @throws DiskmorphException as {@link #convertInPlace}, or {@link InvalidRequestException} when the plan
     *                            no longer holds
     */
    public static InPlaceResult execute(InPlacePlan plan, ProgressListener progress, Cancellation cancel)
            throws DiskmorphException {
        return run(plan.image(), plan.request(), progress, cancel, plan);
    }

    /**
     * Converts an image inside its own file: the guest data stays where it
     * is as far as the target format allows, the new metadata is written
     * under a journal and the header switched last, so a crash at any point
     * leaves the original or the converted image ({@link #recover}). Takes an
     * exclusive lock. Refuses, writing nothing, when the free space is less
     * than the plan's extra space. A cancellation before the commit point
     * puts the original bytes back (or, on the way to raw, leaves a valid
     * image of the intermediate format: {@link ConversionCancelledException#validAs()});
     * after it the conversion finishes.
     *
     * @param path     the image file
     * @param request  the conversion
     * @param progress told each phase and the bytes of the phases that write or move data
     * @param cancel   asked at the conversion's safe points; null when only an interrupt of the calling
     *                 thread should stop it
     * @return the plan as carried out, with the time of each phase
     * @throws DiskmorphException when the conversion is refused or fails ({@link NotEnoughSpaceException},
     *                            {@link ImageInUseException}, ...), {@link ConversionCancelledException} when
     *                            it was cancelled
     */
    public static InPlaceResult convertInPlace(Path path, InPlaceRequest request, ProgressListener progress,
                                               Cancellation cancel) throws DiskmorphException {
        return run(path, request, progress, cancel, null);
    }

    private static InPlaceResult run(Path path, InPlaceRequest request, ProgressListener progress,
                                     Cancellation cancel, InPlacePlan expected) throws DiskmorphException {
        long start = System.nanoTime();
        io.diskmorph.convert.Cancellation stop = cancel != null ? cancel.internal()
                : new io.diskmorph.convert.Cancellation();
        Failures.GuardedListener listener = new Failures.GuardedListener(progress, stop);
        return Failures.uninterruptibly(() -> {
            try (ConversionFile file = ConversionFile.open(path, LockMode.EXCLUSIVE, backing(path, request))) {
                if (expected != null) {
                    stillHolds(expected, file);
                }
                ConversionPlan done;
                try {
                    done = InPlaceConverter.convert(file, request.internal(), listener, stop);
                } catch (io.diskmorph.convert.Cancellation.CancelledException e) {
                    String left = e.validAs() != null
                            ? "the image is a valid " + e.validAs() + " image with the same content, part of its "
                            + "data moved (converting again continues)"
                            : "the original image is back, unchanged";
                    RuntimeException why = listener.failure();
                    throw new ConversionCancelledException(path + ": interrupted (" + e.reason() + ") before the "
                            + "switch; " + left, why != null ? why : e, e.validAs());
                }
                Instant after = Files.getLastModifiedTime(path).toInstant();
                return new InPlaceResult(InPlacePlan.of(path, request, after, done),
                        Duration.ofNanos(System.nanoTime() - start));
            }
        }, stop);
    }

    /** Refuses a plan the image no longer matches (see {@link #execute}); the exclusive lock is held. */
    private static void stillHolds(InPlacePlan expected, ConversionFile file) throws IOException {
        Path path = expected.image();
        Instant modified = Files.getLastModifiedTime(path).toInstant();
        long length = Files.size(path);
        if (!modified.equals(expected.lastModified()) || length != expected.originalLength()) {
            throw new io.diskmorph.image.InvalidRequestException(path + ": changed since the plan was made (length "
                    + expected.originalLength() + " -> " + length + ", modified " + expected.lastModified() + " -> "
                    + modified + "); plan again");
        }
        InPlacePlan now = InPlacePlan.of(path, expected.request(), modified,
                InPlaceConverter.plan(file, expected.request().internal()));
        String differs = expected.differenceFrom(now);
        if (differs != null) {
            throw new io.diskmorph.image.InvalidRequestException(path + ": changed since the plan was made ("
                    + differs + "); plan again");
        }
    }

    private static io.diskmorph.image.OpenContext.BackingOpener backing(Path path, InPlaceRequest request)
            throws IOException {
        return Images.backingOpener(path, io.diskmorph.image.OpenOptions.forReading()
                .withFollowBacking(request.followBacking()));
    }

    /**
     * Finishes or undoes an interrupted in-place conversion or rollback:
     * before the header switch the original is restored, after it the
     * conversion is completed. Idempotent and itself crash-safe.
     *
     * @param path the image file
     * @return what was found and done
     * @throws DiskmorphException when the image is in use or its journal does not belong to it
     */
    public static RecoveryOutcome recover(Path path) throws DiskmorphException {
        return recover(path, false, ProgressListener.NONE);
    }

    /**
     * {@link #recover(Path)}, telling {@code progress} its phases: "journal"
     * (bytes read), "restore" or "complete" (bytes put back), "sync",
     * "cleanup".
     *
     * @param path        the image file
     * @param acceptMoved the image was moved or copied to another file together with its journal: identify
     *                    it by its content, not by its inode (the command's {@code --accept-moved})
     * @param progress    told each phase and its bytes
     * @return what was found and done
     * @throws DiskmorphException when the image is in use or its journal does not belong to it
     *                            ({@link JournalMismatchException}, unless {@code acceptMoved})
     */
    public static RecoveryOutcome recover(Path path, boolean acceptMoved, ProgressListener progress)
            throws DiskmorphException {
        Failures.GuardedListener listener = new Failures.GuardedListener(progress, null);
        return Failures.uninterruptibly(() -> {
            try (ConversionFile file = ConversionFile.openAfterInterruption(path,
                    Images.backingOpener(path, io.diskmorph.image.OpenOptions.forReading()))) {
                return RecoveryOutcome.of(Recovery.recover(file, acceptMoved, listener));
            }
        }, null);
    }

    /**
     * Restores the format an image had before an in-place conversion made
     * with {@link InPlaceRequest#keepRollback()}, byte for byte, unless the
     * image was written since.
     *
     * @param path the image file
     * @throws DiskmorphException when there is no rollback record, or it no longer matches the image
     */
    public static void rollback(Path path) throws DiskmorphException {
        rollback(path, false, ProgressListener.NONE);
    }

    /**
     * {@link #rollback(Path)}, telling {@code progress} its phases:
     * "journal", "restore" (bytes put back), "sync", "switch", "cleanup".
     *
     * @param path        the image file
     * @param acceptMoved the image was moved or copied together with its rollback record: identify it by its
     *                    content, not by its inode (the command's {@code --accept-moved})
     * @param progress    told each phase and its bytes
     * @throws DiskmorphException when there is no rollback record, or it no longer matches the image
     *                            ({@link JournalMismatchException}, unless {@code acceptMoved})
     */
    public static void rollback(Path path, boolean acceptMoved, ProgressListener progress)
            throws DiskmorphException {
        Failures.GuardedListener listener = new Failures.GuardedListener(progress, null);
        Failures.uninterruptibly(() -> {
            try (ConversionFile file = ConversionFile.openAfterInterruption(path, null)) {
                Recovery.rollback(file, acceptMoved, listener);
            }
            return null;
        }, null);
    }
}
