package io.diskmorph.format.raw;

import io.diskmorph.image.CreateSpec;
import io.diskmorph.image.DiskImage;
import io.diskmorph.image.FormatOptions;
import io.diskmorph.image.ImageFormat;
import io.diskmorph.image.InvalidRequestException;
import io.diskmorph.image.MeasurableFormat;
import io.diskmorph.image.OpenContext;
import io.diskmorph.storage.Storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.List;

/** Raw images: no metadata, guest offset = host offset, holes are zeros. */
public final class RawFormat implements ImageFormat, MeasurableFormat {
    public static final String NAME = "raw";

    @Override
    public String name() {
        return NAME;
    }

    /** Anything can be raw; the lowest positive score lets every real format win. */
    @Override
    public int probe(ByteBuffer head, long fileSize) {
        return 1;
    }

    @Override
    public DiskImage open(Storage storage, OpenContext context) throws IOException {
        return new RawImage(this, storage, context);
    }

    @Override
    public DiskImage create(Storage storage, CreateSpec spec, OpenContext context) throws IOException {
        FormatOptions o = new FormatOptions(NAME, spec.options());
        String prealloc = preallocation(o);
        o.rejectUnknown();
        if (spec.backingFile() != null) {
            throw new InvalidRequestException("format raw does not support backing files");
        }
        if (spec.virtualSize() < 0) {
            throw new InvalidRequestException("image size must not be negative");
        }
        // a whole number of sectors, like qemu's file driver (raw_co_create rounds the size up to 512)
        long size = Math.addExact(spec.virtualSize(), 511) & ~511L;
        switch (prealloc) {
            case "off" -> storage.truncate(size);
            case "full" -> {
                ByteBuffer zeros = ByteBuffer.allocate(1 << 20);
                for (long pos = 0; pos < size; pos += zeros.capacity()) {
                    zeros.clear().limit((int) Math.min(zeros.capacity(), size - pos));
                    storage.write(zeros, pos);
                }
            }
            default -> throw new IllegalStateException(prealloc);
        }
        storage.sync();
        return open(storage, context.withReadOnly(false));
    }

    private static String preallocation(FormatOptions o) throws InvalidRequestException {
        String prealloc = o.string("preallocation", "off");
        if (!prealloc.equals("off") && !prealloc.equals("full")) {
            throw new InvalidRequestException("raw preallocation must be off or full, not '" + prealloc + "'");
        }
        return prealloc;
    }

    /**
     * qemu's raw_measure: a raw file is as long as the disk (rounded up to a
     * sector), holes or not, so required and fully allocated are the same.
     */
    @Override
    public Measurement measure(CreateSpec spec, DiskImage source) throws IOException {
        FormatOptions o = new FormatOptions(NAME, spec.options());
        preallocation(o);
        o.rejectUnknown();
        if (spec.backingFile() != null) {
            throw new InvalidRequestException("format raw does not support backing files");
        }
        long size = source != null ? source.virtualSize() : spec.virtualSize();
        if (size < 0) {
            throw new InvalidRequestException("image size must not be negative");
        }
        long rounded = Math.addExact(size, 511) & ~511L;
        return new Measurement(rounded, rounded, -1);
    }

    @Override
    public List<OptionHelp> createOptions() {
        return List.of(new OptionHelp("preallocation", "off (sparse, default) or full (write zeros)"));
    }
}
