package io.diskmorph.api;

/** What {@link Diskmorph#check(java.nio.file.Path, String, Repair)} may change (qemu-img check's {@code -r}). */
public enum Repair {
    /** Only look. */
    NONE,
    /** Free leaked space (space nothing refers to). */
    LEAKS,
    /** Free leaks and repair corruptions. */
    ALL;

    io.diskmorph.image.RepairMode internal() {
        return switch (this) {
            case NONE -> io.diskmorph.image.RepairMode.NONE;
            case LEAKS -> io.diskmorph.image.RepairMode.LEAKS;
            case ALL -> io.diskmorph.image.RepairMode.ALL;
        };
    }
}
