package io.diskmorph.api;

/** What {@link Diskmorph#recover(java.nio.file.Path)} found and did. */
public enum RecoveryOutcome {
    /** No journal: the image was not in the middle of a conversion. */
    NOTHING_TO_DO,
    /** The journal was torn while being written: the image had not been touched; the journal is gone. */
    DISCARDED_TORN_JOURNAL,
    /** The conversion had not committed: the original image is back. */
    RESTORED_SOURCE,
    /** The conversion had committed: it was finished. */
    COMPLETED_TARGET,
    /** A rollback had been interrupted: it was finished, the original image is back. */
    ROLLED_BACK;

    static RecoveryOutcome of(io.diskmorph.convert.Recovery.Outcome o) {
        return valueOf(o.name());
    }
}
