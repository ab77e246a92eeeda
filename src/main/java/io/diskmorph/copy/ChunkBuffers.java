package io.diskmorph.copy;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayDeque;

/**
 * The copy's chunk buffers, for data no mapped range of the source serves
 * (compressed clusters, data split across layers), the one given back last
 * handed out first: a copy touches only as many as it has in flight at
 * once. Each job used to keep a buffer of its own, and the jobs take turns,
 * so a copy of a compressed source zeroed and faulted in all nine (18 MiB)
 * while two or three were ever in use; on a VM that hands freed memory back
 * to its host each of those pages costs a host fault.
 *
 * <p>The reader takes buffers, the writer gives them back once written.
 */
final class ChunkBuffers {
    private final int size;
    private final ArrayDeque<ByteBuffer> free = new ArrayDeque<>();
    private int made;

    ChunkBuffers(int size) {
        this.size = size;
    }

    /** A buffer of {@code size} bytes: the last one given back, or a new one. */
    synchronized ByteBuffer take() {
        ByteBuffer b = free.pollFirst();
        if (b != null) {
            return b;
        }
        made++;
        // page-aligned, native order: the zero scan's word reads need no byte swapping
        return ByteBuffer.allocateDirect(size + 4096).alignedSlice(4096).order(ByteOrder.nativeOrder());
    }

    /** {@code b}, taken from here, is no longer in use. */
    synchronized void give(ByteBuffer b) {
        free.addFirst(b);
    }

    /** How many buffers were made so far (the most ever in use at once). */
    synchronized int made() {
        return made;
    }
}
