package io.diskmorph.api;

import java.util.List;

/**
 * What a consistency check found, with qemu-img check's counters; counters
 * a format does not have are -1.
 *
 * @param format             the image's format
 * @param supported          false when the format has no checks (raw): every counter is then 0 or -1
 * @param corruptions        corruptions found and not repaired
 * @param leaks              leaked clusters (space nothing refers to) found and not repaired
 * @param checkErrors        errors that kept parts of the image from being checked
 * @param corruptionsFixed   corruptions repaired
 * @param leaksFixed         leaks repaired
 * @param imageEndOffset     the byte offset where the image's used space ends, or -1
 * @param totalClusters      clusters of the virtual disk, or -1
 * @param allocatedClusters  clusters allocated, or -1
 * @param fragmentedClusters allocated clusters not right after the previous one, or -1
 * @param compressedClusters compressed clusters, or -1
 * @param messages           one line per problem, in qemu-img's wording
 * @param repaired           repairs were asked for and something changed
 * @param failure            why the check could not finish (qemu's "Check failed: ..."), or null; the
 *                           counters then describe the partial run
 * @param exitCode           qemu-img check's exit code: 0 clean, 1 the check failed, 2 corruptions,
 *                           3 leaks only, 63 the format has no checks
 */
public record CheckResult(String format, boolean supported, long corruptions, long leaks, long checkErrors,
                          long corruptionsFixed, long leaksFixed, long imageEndOffset, long totalClusters,
                          long allocatedClusters, long fragmentedClusters, long compressedClusters,
                          List<String> messages, boolean repaired, String failure, int exitCode) {

    /**
     * Copies the messages, so the value cannot change.
     *
     * @param format             see the record
     * @param supported          see the record
     * @param corruptions        see the record
     * @param leaks              see the record
     * @param checkErrors        see the record
     * @param corruptionsFixed   see the record
     * @param leaksFixed         see the record
     * @param imageEndOffset     see the record
     * @param totalClusters      see the record
     * @param allocatedClusters  see the record
     * @param fragmentedClusters see the record
     * @param compressedClusters see the record
     * @param messages           see the record
     * @param repaired           see the record
     * @param failure            see the record
     * @param exitCode           see the record
     */
    public CheckResult {
        messages = List.copyOf(messages);
    }

    /**
     * Whether the image is consistent: no corruptions, leaks or check errors
     * left, and the check finished.
     *
     * @return true for a clean image
     */
    public boolean isClean() {
        return supported && exitCode == 0;
    }

    static CheckResult of(String format, io.diskmorph.image.CheckReport r) {
        return new CheckResult(format, true, r.corruptions, r.leaks, r.checkErrors, r.corruptionsFixed,
                r.leaksFixed, r.imageEndOffset, r.totalClusters, r.allocatedClusters, r.fragmentedClusters,
                r.compressedClusters, r.messages, r.repaired, r.failure, r.exitCode());
    }

    static CheckResult unsupported(String format) {
        return new CheckResult(format, false, 0, 0, 0, 0, 0, -1, -1, -1, -1, -1, List.of(), false, null,
                io.diskmorph.image.ExitCodes.CHECK_UNSUPPORTED);
    }
}
