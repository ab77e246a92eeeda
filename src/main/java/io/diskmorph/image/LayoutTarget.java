package io.diskmorph.image;

import java.io.IOException;

/**
 * A format that can be built over existing guest data: implemented by the
 * {@link ImageFormat}s that can be the target of create-by-layout and of an
 * in-place conversion.
 */
public interface LayoutTarget {

    /**
     * A builder for a target with these options. {@code spec.options()} are
     * the user's -o options; a format validates them (rejecting unknown ones)
     * and fills defaults from {@code defaults} where the user gave none
     * (an in-place conversion passes the source's cluster size so data can
     * stay). Throws {@link InvalidRequestException} or
     * {@link UnsupportedFeatureException} before anything is written.
     */
    LayoutBuilder layoutBuilder(CreateSpec spec, TargetDefaults defaults, HostSpace space) throws IOException;

    /**
     * Why an in-place conversion to this format refuses the create option
     * {@code name} (one of {@link ImageFormat#createOptions()}), or null when
     * it takes it. The converter refuses exactly these, and '-o help' lists
     * them. Backing options: the image keeps the backing file it has (a new
     * one would show through wherever the image is unallocated: its holes).
     */
    default String notInPlace(String name) {
        return name.equals("backing_file") || name.equals("backing_fmt")
                ? "the image keeps its own backing file, or none (a new one would show through its holes)"
                : null;
    }

    /**
     * Whether clusters in the file that no metadata references count as leaks
     * for this format's checker (QED: yes, so an in-place conversion must not
     * leave dead space below the end of the file; qcow2: no, refcount-0
     * clusters are free space).
     */
    boolean unreferencedSpaceIsLeak();

    /**
     * A warning about how qemu-img judges a file of this format laid out
     * with {@code clusterSize} and {@code fileLength} although it is sound
     * (a known qemu bug), or null. Printed with the plan, so a user who runs
     * qemu-img check afterwards knows what to expect.
     */
    default String qemuCheckNote(long clusterSize, long fileLength) {
        return null;
    }

    /**
     * Hints from the source of a conversion: its cluster size, and when the
     * source has the target's format, its own creation options
     * ({@link DiskImage#creationOptions()}), which a target takes for every
     * option the user did not give and that still fits the options given.
     */
    record TargetDefaults(long clusterSize, java.util.Map<String, String> sameFormatOptions) {
        public static final TargetDefaults NONE = new TargetDefaults(0, java.util.Map.of());

        public TargetDefaults {
            sameFormatOptions = java.util.Map.copyOf(sameFormatOptions);
        }

        /** Only a cluster size hint (a source of another format). */
        public TargetDefaults(long clusterSize) {
            this(clusterSize, java.util.Map.of());
        }

        /** The source's value of a same-format option, or null. */
        public String sourceOption(String name) {
            return sameFormatOptions.get(name);
        }
    }
}
