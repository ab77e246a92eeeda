/** Converts a disk image in place with a progress bar. */
module example.inplace {
    requires io.diskmorph;
}
