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
 * refused operation leaves every file as it was.
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
     * files: an image with a backing file reads through to zeros).
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
        return check(path, format, repair, ProgressListener.NONE);
    }

    /**
     * {@link #check(Path, String, Repair)}, telling {@code progress} how far
     * it got: the phases "tables" (guest bytes whose table entries were
     * judged), "refcounts" (qcow2: host bytes whose counts were compared),
     * "grains" (VMDK), "repair" (announced), as {@code check --progress=json}
     * prints them.
     *
     * @param path     the image file
     * @param format   its format, or null to probe
     * @param repair   what may be changed
     * @param progress told each phase and its bytes
     * @return the counters and messages
     * @throws DiskmorphException when the image cannot be opened
     */
    public static CheckResult check(Path path, String format, Repair repair, ProgressListener progress)
            throws DiskmorphException {
        io.diskmorph.image.OpenOptions o = new io.diskmorph.image.OpenOptions(format, repair == Repair.NONE,
                repair == Repair.NONE ? LockMode.SHARED : LockMode.EXCLUSIVE, false, false, true);
        return Failures.translating(() -> {
            try (DiskImage image = Images.open(path, o)) {
                CheckReport r;
                try {
                    r = image.check(repair.internal(), progress::progress);
                } catch (UnsupportedFeatureException e) {
                    return CheckResult.unsupported(image.format().name());
                }
                return CheckResult.of(image.format().name(), r);
            }
        });
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
     * @throws DiskmorphException when an image cannot be walked ({@link CompareFailedException}: exit 3 or 4)
     */
    public static CompareResult compare(Image first, Image second, boolean strict, ProgressListener progress)
            throws DiskmorphException {
        return Failures.translating(() -> {
            ImageCompare.Result r = ImageCompare.compare(first.internal(), second.internal(), strict,
                    (done, total) -> progress.progress("compare", done, total));
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
        Failures.translating(() -> {
            ImageFormat f = FormatRegistry.byName(request.format());
            long size = request.virtualSize();
            if (size < 0) {
                if (request.backingFile() == null) {
                    throw new io.diskmorph.image.InvalidRequestException("missing size (needed unless a backing "
                            + "file gives it)");
                }
                size = Images.backingSize(path, request.backingFile(), request.backingFormat());
            }
            Images.create(path, f, new CreateSpec(size, request.options(), request.backingFile(),
                    request.backingFormat()));
            return null;
        });
        return info(path);
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
        return Failures.translating(() -> MeasureResult.of(Measure.image(path, sourceFormat, targetFormat, options,
                inPlace, progress::progress)));
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
     * {@code target} and appears under its name only when complete; a
     * failure or a cancellation leaves no target.
     *
     * @param source   the image file to copy, through its backing chain
     * @param target   the new image file
     * @param request  formats, options, compression, sparseness, durability
     * @param progress told the bytes of data copied (phase "copy")
     * @param cancel   asked between chunks; null when the copy cannot be cancelled
     * @return the new image's details and what was written
     * @throws DiskmorphException when the copy is refused or fails, {@link ConversionCancelledException}
     *                            when it was cancelled
     */
    public static CopyResult copy(Path source, Path target, CopyRequest request, ProgressListener progress,
                                    Cancellation cancel) throws DiskmorphException {
        CopyEngine.Progress p = progress == ProgressListener.NONE && cancel == null ? CopyEngine.Progress.NONE
                : (done, total) -> {
                    if (cancel != null && cancel.isCancelled()) {
                        throw new CopyStopped();
                    }
                    progress.progress("copy", done, total);
                };
        CopyConversion.Result done;
        try {
            done = Failures.translating(() -> {
                CopyConversion.Request r = new CopyConversion.Request(source, request.sourceFormat(), target,
                        request.targetFormat(), request.options(), request.backingFile(), request.backingFormat(),
                        new CopyEngine.Settings(request.minSparse(), request.compress(), request.parallel(),
                                request.outOfOrder()),
                        request.durable() ? CopyConversion.Cache.WRITEBACK : CopyConversion.Cache.UNSAFE);
                return CopyConversion.run(r, PartFile.forTarget(target), p);
            });
        } catch (CopyStopped s) {
            throw new ConversionCancelledException(source + ": copy to " + target + " cancelled; no target "
                    + "was left", null, null);
        }
        return new CopyResult(info(target), done.sourceFormat(), done.written().dataBytes(),
                done.written().compressedBytes(), done.written().zeroBytes());
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
        return Failures.translating(() -> {
            try (ConversionFile file = ConversionFile.open(path, LockMode.SHARED, backing(path, request))) {
                Instant modified = Files.getLastModifiedTime(path).toInstant();
                return InPlacePlan.of(path, request, modified, InPlaceConverter.plan(file, request.internal(),
                        progress::progress));
            }
        });
    }

    /**
     * Carries out a plan made by {@link #plan}, if the image has not changed
     * since (its length and modification time); otherwise refuses, writing
     * nothing: plan again.
     *
     * @param plan     the plan
     * @param progress told each phase and the bytes of the phases that write or move data
     * @param cancel   asked at the conversion's safe points; null when it cannot be cancelled
     * @return the plan as carried out, with the time of each phase
     * @throws DiskmorphException as {@link #convertInPlace}, or {@link InvalidRequestException} when the image
     *                            changed since the plan
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
     * than the plan's extra space.
     *
     * @param path     the image file
     * @param request  the conversion
     * @param progress told each phase and the bytes of the phases that write or move data
     * @param cancel   asked at the conversion's safe points; null when it cannot be cancelled
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
        return Failures.translating(() -> {
            try (ConversionFile file = ConversionFile.open(path, LockMode.EXCLUSIVE, backing(path, request))) {
                if (expected != null) {
                    Instant modified = Files.getLastModifiedTime(path).toInstant();
                    long length = Files.size(path);
                    if (!modified.equals(expected.lastModified()) || length != expected.originalLength()) {
                        throw new io.diskmorph.image.InvalidRequestException(path + ": changed since the plan was "
                                + "made (length " + expected.originalLength() + " -> " + length + ", modified "
                                + expected.lastModified() + " -> " + modified + "); plan again");
                    }
                }
                ConversionPlan done = InPlaceConverter.convert(file, request.internal(), progress::progress,
                        cancel != null ? cancel.internal() : io.diskmorph.convert.Cancellation.NONE);
                Instant after = Files.getLastModifiedTime(path).toInstant();
                return new InPlaceResult(InPlacePlan.of(path, request, after, done),
                        Duration.ofNanos(System.nanoTime() - start));
            }
        });
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
        return recover(path, ProgressListener.NONE);
    }

    /**
     * {@link #recover(Path)}, telling {@code progress} its phases: "journal"
     * (bytes read), "restore" or "complete" (bytes put back), "sync",
     * "cleanup".
     *
     * @param path     the image file
     * @param progress told each phase and its bytes
     * @return what was found and done
     * @throws DiskmorphException when the image is in use or its journal does not belong to it
     */
    public static RecoveryOutcome recover(Path path, ProgressListener progress) throws DiskmorphException {
        return Failures.translating(() -> {
            try (ConversionFile file = ConversionFile.openAfterInterruption(path,
                    Images.backingOpener(path, io.diskmorph.image.OpenOptions.forReading()))) {
                return RecoveryOutcome.of(Recovery.recover(file, false, progress::progress));
            }
        });
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
        rollback(path, ProgressListener.NONE);
    }

    /**
     * {@link #rollback(Path)}, telling {@code progress} its phases:
     * "journal", "restore" (bytes put back), "sync", "switch", "cleanup".
     *
     * @param path     the image file
     * @param progress told each phase and its bytes
     * @throws DiskmorphException when there is no rollback record, or it no longer matches the image
     */
    public static void rollback(Path path, ProgressListener progress) throws DiskmorphException {
        Failures.translating(() -> {
            try (ConversionFile file = ConversionFile.openAfterInterruption(path, null)) {
                Recovery.rollback(file, false, progress::progress);
            }
            return null;
        });
    }
}
