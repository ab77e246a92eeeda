package io.diskmorph.copy;

import org.junit.jupiter.api.Test;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

import static org.junit.jupiter.api.Assertions.*;

class ChunkBuffersTest {
    /**
     * The buffer given back last is handed out first, and a new one is made
     * only when every buffer is in use: a copy touches as many as it has in
     * flight, not one per job.
     */
    @Test
    void reusesTheLastBufferGivenBackAndMakesOnlyWhatIsInUseAtOnce() {
        ChunkBuffers buffers = new ChunkBuffers(1 << 20);
        ByteBuffer a = buffers.take();
        assertEquals(1 << 20, a.capacity());
        assertEquals(0, a.alignmentOffset(0, 4096), "page-aligned");
        assertEquals(ByteOrder.nativeOrder(), a.order());
        ByteBuffer b = buffers.take();
        assertNotSame(a, b, "a buffer in use is not handed out twice");
        assertEquals(2, buffers.made());
        buffers.give(a);
        buffers.give(b);
        assertSame(b, buffers.take(), "the last one given back first: its pages are the warm ones");
        for (int job = 0; job < 20; job++) { // jobs taking turns, one in flight at a time
            ByteBuffer c = buffers.take();
            buffers.give(c);
        }
        assertEquals(2, buffers.made(), "no buffer made while one was free");
    }
}
