/** Prints a JSON report of the disk images in a directory. */
module example.report {
    requires io.diskmorph;
}
