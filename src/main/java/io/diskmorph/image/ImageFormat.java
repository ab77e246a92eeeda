package io.diskmorph.image;

import io.diskmorph.storage.Storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.List;
import java.util.Map;

/**
 * A format driver (listed in {@link FormatRegistry}).
 */
public interface ImageFormat {

    /** Name as qemu-img spells it ("raw", "qcow2", "qed"). */
    String name();

    /**
     * How sure this driver is that the file is its format, 0 (no) to 100
     * (magic and version match). {@code head} holds the first bytes of the file
     * (up to 4 KiB, fewer for a short file). Must not throw on any input.
     */
    int probe(ByteBuffer head, long fileSize);

    /**
     * {@link #probe(ByteBuffer, long)} for drivers that also look at the file
     * name (qemu's dmg probe does); {@code fileName} may be null.
     */
    default int probe(ByteBuffer head, long fileSize, String fileName) {
        return probe(head, fileSize);
    }

    /**
     * False for a format diskmorph recognises (so that it is never taken for
     * raw) but cannot read yet: opening or creating one is refused by name.
     */
    default boolean supported() {
        return true;
    }

    /**
     * False for a driver that only reads (VMDK, for now): {@link #create},
     * guest writes and an in-place conversion to the format are refused by
     * name. It may still be the source of an in-place conversion, which only
     * reads the source (its images say when they cannot be one: {@link
     * DiskImage#notInPlaceSource()}).
     */
    default boolean canWrite() {
        return true;
    }

    /**
     * The one-line refusal of create, guest writes and in-place conversion
     * to the format when {@link #canWrite()} is false.
     */
    default UnsupportedFeatureException writingNotSupported() {
        return new UnsupportedFeatureException(name() + " writing is not supported yet");
    }

    /**
     * Whether an image created with these -o options fills its file from the
     * front without holes as guests write (new clusters appended and written
     * whole): a copy then allocates the target's blocks ahead of its writes
     * ({@code FileStorage#allocateAhead}). False where holes in the file are
     * part of what the format writes.
     */
    default boolean fillsFileWithoutHoles(Map<String, String> options) {
        return false;
    }

    /** Opens an image on {@code storage}; the image owns the storage from here on. */
    DiskImage open(Storage storage, OpenContext context) throws IOException;

    /**
     * Creates a new image on an empty {@code storage} and returns it opened for
     * writing. Unknown options are rejected before anything is written.
     */
    DiskImage create(Storage storage, CreateSpec spec, OpenContext context) throws IOException;

    /**
     * Judges {@code spec} as {@link #create} would, without touching a file:
     * create calls it before it opens (and truncates) the image. Formats that
     * are {@link MeasurableFormat}s are judged by their measure instead.
     */
    default void checkCreateSpec(CreateSpec spec) throws IOException {
    }

    /** The -o options {@link #create} accepts, for help texts and validation. */
    List<OptionHelp> createOptions();

    /** One documented option. */
    record OptionHelp(String name, String description) {
    }
}
