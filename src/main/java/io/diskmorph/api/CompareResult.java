package io.diskmorph.api;

/**
 * What comparing the guest content of two images found (qemu-img compare).
 *
 * @param identical       the guest content is the same
 * @param firstDifference the guest offset of the first differing byte (qemu-img's sector-granular
 *                        offset), or -1 when identical
 * @param message         qemu-img compare's line ("Images are identical.", "Content mismatch at offset N!")
 */
public record CompareResult(boolean identical, long firstDifference, String message) {

    /**
     * qemu-img compare's exit code for this result.
     *
     * @return 0 identical, 1 different
     */
    public int exitCode() {
        return identical ? 0 : 1;
    }
}
