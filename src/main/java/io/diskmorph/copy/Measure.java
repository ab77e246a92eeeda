package io.diskmorph.copy;

import io.diskmorph.convert.ConversionFile;
import io.diskmorph.convert.ConversionPlan;
import io.diskmorph.convert.InPlaceConverter;
import io.diskmorph.image.CreateSpec;
import io.diskmorph.image.DiskImage;
import io.diskmorph.image.FormatRegistry;
import io.diskmorph.image.ImageFormat;
import io.diskmorph.image.Images;
import io.diskmorph.image.MeasurableFormat;
import io.diskmorph.image.OpenOptions;
import io.diskmorph.image.UnsupportedFeatureException;
import io.diskmorph.storage.FileStorage;
import io.diskmorph.storage.FileStorageDir;
import io.diskmorph.storage.LockMode;

import java.io.IOException;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * qemu-img measure: the size a new image of a target format needs for a
 * source image's content (or for an empty disk of a given size), from the
 * target format's {@link MeasurableFormat}; and, for an in-place conversion,
 * the figures of its dry-run plan. Nothing is written.
 */
public final class Measure {
    private Measure() {
    }

    /**
     * Sizes; {@code bitmaps} is -1 when not reported, {@code inPlace} null
     * unless asked for. {@code required} and {@code fullyAllocated} are -1
     * only for an in-place plan into a format qemu-img cannot measure (VMDK).
     */
    public record Result(long required, long fullyAllocated, long bitmaps, InPlace inPlace) {
    }

    /** What converting the image inside its own file would take (see {@link ConversionPlan}). */
    public record InPlace(long extraSpace, long movedBytes, long finalLength, long keptBytes, long metadataBytes) {
    }

    /** An empty disk of {@code size} bytes. */
    public static Result empty(long size, String targetFormat, Map<String, String> options) throws IOException {
        MeasurableFormat f = measurable(targetFormat);
        MeasurableFormat.Measurement m = f.measure(spec(size, options), null);
        return new Result(m.required(), m.fullyAllocated(), m.bitmaps(), null);
    }

    /**
     * The content of {@code image} (its whole chain) in a new image of
     * {@code targetFormat}; with {@code inPlace} also the in-place plan.
     */
    public static Result image(Path image, String sourceFormat, String targetFormat, Map<String, String> options,
                               boolean inPlace) throws IOException {
        return image(image, sourceFormat, targetFormat, options, inPlace, InPlaceConverter.Progress.NONE);
    }

    /**
     * {@link #image(Path, String, String, Map, boolean)}, telling {@code
     * progress}: phase "measure", the guest bytes of the chain walked, of
     * the virtual size (a target whose figures need no walk, raw, goes from
     * 0 to the end at once); with {@code inPlace} then the planner's phases
     * as convert --in-place --dry-run reports them.
     */
    public static Result image(Path image, String sourceFormat, String targetFormat, Map<String, String> options,
                               boolean inPlace, InPlaceConverter.Progress progress) throws IOException {
        if (inPlace && !(FormatRegistry.byName(targetFormat) instanceof MeasurableFormat)) {
            // qemu-img measures no VMDK, so neither does diskmorph; the in-place plan has figures all the same
            return new Result(-1, -1, -1, inPlace(image, sourceFormat, targetFormat, options, progress));
        }
        MeasurableFormat f = measurable(targetFormat);
        MeasurableFormat.Measurement m;
        try (DiskImage source = Images.open(image, OpenOptions.forReading().withFormat(sourceFormat))) {
            CreateSpec spec = spec(source.virtualSize(), options);
            long size = source.virtualSize();
            progress.update("measure", 0, size);
            m = ScopedValue.where(MeasurableFormat.WALK_PROGRESS, progress).call(() -> f.measure(spec, source));
            progress.update("measure", size, size);
        }
        InPlace ip = inPlace ? inPlace(image, sourceFormat, targetFormat, options, progress) : null;
        return new Result(m.required(), m.fullyAllocated(), m.bitmaps(), ip);
    }

    private static InPlace inPlace(Path image, String sourceFormat, String targetFormat, Map<String, String> options,
                                   InPlaceConverter.Progress progress) throws IOException {
        try (ConversionFile cf = ConversionFile.open(image, LockMode.SHARED,
                Images.backingOpener(image, OpenOptions.forReading()))) {
            ConversionPlan p = InPlaceConverter.plan(cf, new InPlaceConverter.Request(sourceFormat, targetFormat,
                    options, false), progress);
            return new InPlace(p.extraSpace(), p.movedBytesTotal(), p.finalLength(), p.keptBytes(), p.metadataBytes());
        }
    }

    private static MeasurableFormat measurable(String targetFormat) throws IOException {
        ImageFormat f = FormatRegistry.byName(targetFormat);
        if (!(f instanceof MeasurableFormat m)) {
            throw new UnsupportedFeatureException("format " + f.name() + " does not support size measurement");
        }
        return m;
    }

    /** -o backing_file/backing_fmt go into the spec's backing fields, like create. */
    private static CreateSpec spec(long size, Map<String, String> options) {
        Map<String, String> opts = new LinkedHashMap<>(options);
        String backing = opts.remove("backing_file");
        String backingFormat = opts.remove("backing_fmt");
        return new CreateSpec(size, opts, backing, backingFormat);
    }
}
