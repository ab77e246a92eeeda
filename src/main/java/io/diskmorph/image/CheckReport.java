package io.diskmorph.image;

import java.util.ArrayList;
import java.util.List;

/**
 * Result of a consistency check, with qemu-img's counters and semantics:
 * corruptions are errors that can lose data, leaks waste space only,
 * checkErrors mean the check itself could not complete. After a repair the
 * counters describe the image as it is now; {@code *Fixed} say what changed.
 */
public final class CheckReport {
    public long corruptions;
    public long leaks;
    public long checkErrors;
    public long corruptionsFixed;
    public long leaksFixed;
    /** -1 when the format has no such notion. */
    public long imageEndOffset = -1;
    public long totalClusters = -1;
    public long allocatedClusters = -1;
    public long fragmentedClusters = -1;
    public long compressedClusters = -1;
    /** Per-problem lines in qemu-img's wording ("Leaked cluster 5 refcount=1 reference=0", "ERROR ..."). */
    public final List<String> messages = new ArrayList<>();
    /** True when repairs were requested and something was changed. */
    public boolean repaired;
    /**
     * Why the check could not run to completion (qemu's "Check failed: ..."
     * with a negative return), or null. The counters then describe the
     * partial run and are not printed.
     */
    public String failure;

    public void error(String message) {
        messages.add(message);
    }

    /** qemu-img check's exit code: 0 clean, 1 check failed, 2 corruptions, 3 leaks only. */
    public int exitCode() {
        if (failure != null || checkErrors > 0) {
            return ExitCodes.CHECK_FAILED;
        }
        if (corruptions > 0) {
            return ExitCodes.CHECK_CORRUPT;
        }
        if (leaks > 0) {
            return ExitCodes.CHECK_LEAKS;
        }
        return ExitCodes.CHECK_CLEAN;
    }

    public boolean isClean() {
        return failure == null && checkErrors == 0 && corruptions == 0 && leaks == 0;
    }
}
