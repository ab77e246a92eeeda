package io.diskmorph.image;

/**
 * The image's metadata is inconsistent or out of bounds. Carries the
 * structure concerned (e.g. "qcow2 L1 table") and the file offset, or -1.
 */
public class CorruptImageException extends ImageException {
    private final String structure;
    private final long offset;

    public CorruptImageException(String structure, long offset, String problem) {
        super(format(structure, offset, problem));
        this.structure = structure;
        this.offset = offset;
    }

    public CorruptImageException(String structure, long offset, String problem, Throwable cause) {
        super(format(structure, offset, problem), cause);
        this.structure = structure;
        this.offset = offset;
    }

    private static String format(String structure, long offset, String problem) {
        return offset >= 0
                ? String.format("corrupt image: %s at offset 0x%x: %s", structure, offset, problem)
                : String.format("corrupt image: %s: %s", structure, problem);
    }

    public String structure() {
        return structure;
    }

    /** File offset of the bad structure or entry, -1 when not tied to one. */
    public long offset() {
        return offset;
    }

    @Override
    public int exitCode() {
        return ExitCodes.CORRUPT;
    }
}
