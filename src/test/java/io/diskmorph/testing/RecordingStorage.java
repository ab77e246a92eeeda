package io.diskmorph.testing;

import io.diskmorph.image.cache.SyncTracker;
import io.diskmorph.storage.ForwardingStorage;
import io.diskmorph.storage.MemoryStorage;
import io.diskmorph.storage.Storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;

/**
 * A storage that records, in order, every write, hole punched and sync that
 * reaches it: the write-ordering tests read the record ("the map page after
 * a sync after the header").
 */
public final class RecordingStorage extends ForwardingStorage {
    /** A write or punched hole ({@code zeros} when it writes only zeros, always for a hole), or a sync. */
    public record Event(boolean sync, long offset, long length, boolean zeros) {
        /** "w OFFSET" for a write or a hole, "sync" for a sync. */
        public String op() {
            return sync ? "sync" : "w " + offset;
        }
    }

    public final List<Event> events = new ArrayList<>();

    public RecordingStorage(Storage inner) {
        super(inner);
    }

    @Override
    public void write(ByteBuffer src, long position) throws IOException {
        events.add(new Event(false, position, src.remaining(), isZero(src)));
        super.write(src, position);
    }

    @Override
    public void sync() throws IOException {
        events.add(new Event(true, -1, 0, false));
        super.sync();
    }

    @Override
    public void punchHole(long offset, long length) throws IOException {
        events.add(new Event(false, offset, length, true));
        super.punchHole(offset, length);
    }

    @Override
    public boolean isReadOnly() {
        return false;
    }

    /** The record as "w OFFSET" and "sync" lines. */
    public List<String> ops() {
        return events.stream().map(Event::op).toList();
    }

    /** A tracker over this storage, for driver parts that write through one. */
    public SyncTracker tracker() {
        return new SyncTracker(this);
    }

    /** The bytes written so far (the inner storage is a MemoryStorage). */
    public byte[] bytes() throws IOException {
        return ((MemoryStorage) inner).toByteArray();
    }

    private static boolean isZero(ByteBuffer b) {
        for (int i = b.position(); i < b.limit(); i++) {
            if (b.get(i) != 0) {
                return false;
            }
        }
        return true;
    }
}
