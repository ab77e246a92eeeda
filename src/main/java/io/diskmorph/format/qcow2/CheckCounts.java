package io.diskmorph.format.qcow2;

/** qemu's BdrvCheckResult counters of one check pass (or of its snapshot table part). */
final class CheckCounts {
    long corruptions;
    long leaks;
    long checkErrors;
    long corruptionsFixed;
    long leaksFixed;
    long allocated;
    long fragmented;
    long compressed;

    CheckCounts copy() {
        CheckCounts c = new CheckCounts();
        c.set(this);
        return c;
    }

    void set(CheckCounts o) {
        corruptions = o.corruptions;
        leaks = o.leaks;
        checkErrors = o.checkErrors;
        corruptionsFixed = o.corruptionsFixed;
        leaksFixed = o.leaksFixed;
        allocated = o.allocated;
        fragmented = o.fragmented;
        compressed = o.compressed;
    }

    /** An error found and repaired. */
    void fixedCorruption() {
        corruptions--;
        corruptionsFixed++;
    }
}
