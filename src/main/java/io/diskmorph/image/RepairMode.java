package io.diskmorph.image;

/** What {@code check -r} may repair, as in qemu-img. */
public enum RepairMode {
    NONE, LEAKS, ALL;

    public boolean leaks() {
        return this != NONE;
    }

    public boolean all() {
        return this == ALL;
    }
}
