package io.diskmorph.convert;

/** Why a guest data unit cannot stay where it is in an in-place conversion. */
public enum MoveReason {
    HEADER_ZONE("in the target's header zone"),
    UNALIGNED("not aligned to the target cluster"),
    FRAGMENTED("not contiguous in the file"),
    COMPRESSED("compressed"),
    MATERIALIZED("partly zero or unallocated over a backing file"),
    OUT_OF_RANGE("at a host offset the target cannot address"),
    COMPACTED("moved down to leave no unreferenced space"),
    TO_GUEST_OFFSET("to its guest offset (raw target)");

    private final String text;

    MoveReason(String text) {
        this.text = text;
    }

    public String text() {
        return text;
    }
}
