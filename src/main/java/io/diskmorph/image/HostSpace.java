package io.diskmorph.image;

import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * Host space handed to a {@link LayoutBuilder}: where its metadata may go,
 * and the only way it writes. For {@code create} this is a simple bump
 * allocator over an empty file; for an in-place conversion the engine hands
 * out free space (holes between kept guest data, dead source metadata, or
 * the region past the original end), journals whatever it overwrites, and
 * runs the builder twice (a dry run that only records, then the real run),
 * so a builder must be deterministic: the same inputs must produce the same
 * sequence of allocate/write calls.
 */
public interface HostSpace {

    /**
     * Allocates {@code length} bytes of host space aligned to {@code alignment}
     * (both multiples of 512; alignment a power of two) that no kept guest data
     * and no earlier allocation uses. The content of the space is undefined:
     * a builder writes every byte it relies on.
     */
    long allocate(long length, long alignment) throws IOException;

    /** Writes metadata into space this builder allocated earlier. */
    void write(long hostOffset, ByteBuffer data) throws IOException;
}
