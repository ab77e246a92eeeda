package io.diskmorph.convert;

import io.diskmorph.image.CommitRecord;
import io.diskmorph.image.DiskImage;
import io.diskmorph.image.HostSpace;
import io.diskmorph.image.LayoutBuilder;
import io.diskmorph.image.NotEnoughSpaceException;
import io.diskmorph.image.OpenContext;
import io.diskmorph.image.UnsupportedFeatureException;
import io.diskmorph.storage.Storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.Arrays;

/**
 * The writing half of an in-place conversion: carries out a {@link
 * PreparedConversion} and changes nothing in it. Journal (synced with its
 * directory), then the target's data and metadata (every write below the
 * original end checked against the journaled ranges), sync, the commit
 * record, then clean-up. A failure or a cancel request before the commit
 * point puts the original bytes back; after it the conversion finishes.
 */
final class Executor {
    private final ConversionFile file;
    private final PreparedConversion prepared;
    private final Cancellation cancel;
    private final PhaseClock clock;

    private Executor(ConversionFile file, PreparedConversion prepared, Cancellation cancel, PhaseClock clock) {
        this.file = file;
        this.prepared = prepared;
        this.cancel = cancel;
        this.clock = clock;
    }

    /** Carries out the plan; returns it with the timings of the phases that did. */
    static ConversionPlan execute(ConversionFile file, PreparedConversion prepared, Cancellation cancel,
                                  PhaseClock clock) throws IOException {
        new Executor(file, prepared, cancel, clock).run();
        return prepared.plan().withPhases(clock.stop());
    }

    private void run() throws IOException {
        ConversionPlan plan = prepared.plan();
        Storage image = file.image();
        if (!plan.enoughSpace()) {
            throw new NotEnoughSpaceException("the in-place conversion (journal and new metadata)",
                    plan.extraSpace(), plan.availableSpace());
        }
        CommitRecord.Write point = prepared.commit().commitPoint();
        if (Journal.holds(image, point.offset(), point.bytes())) {
            // recovery would take the untouched source for a committed target
            throw new UnsupportedFeatureException("the target's commit record equals what the file holds already; "
                    + "nothing to convert");
        }
        cancel.check();
        file.dir().delete(file.rollbackName()); // an older rollback record no longer matches the file
        clock.phase("journal");
        Journal journal;
        try (Storage js = file.dir().create(file.journalName())) {
            journal = Journal.write(js, image, plan.originalLength(), plan.finalLength(), plan.sourceFormat(),
                    plan.targetFormat(), prepared.identity(), prepared.commit().writes(), prepared.witnesses(),
                    prepared.segments(), plan.keepRollback() ? Journal.FLAG_KEEP_ROLLBACK : 0);
        }
        file.dir().sync();
        if (cancel.requested()) {
            // the image is untouched: the journal just goes
            file.dir().delete(file.journalName());
            file.dir().sync();
            cancel.check();
        }

        // From here on the image changes; every write below the original end is in the journal.
        clock.phase("write");
        try {
            writeAndSwitch(image, journal);
        } catch (IOException | RuntimeException e) {
            // a source that turns out unreadable while its data is copied (a corrupt compressed cluster,
            // say), or a cancel request, is a refusal too: put the original bytes back
            try {
                Recovery.restore(file, journal);
            } catch (IOException | RuntimeException r) {
                e.addSuppressed(r); // the journal stays; 'diskmorph recover' finishes the job
            }
            throw e;
        }
        clock.phase("cleanup");
        Recovery.finishCommitted(file, journal);
    }

    /** Writes the target's data and metadata, then the commit record: the commit point. */
    private void writeAndSwitch(Storage image, Journal journal) throws IOException {
        PreparedConversion.Placement placement = prepared.placement();
        try (Storage js = file.dir().open(file.journalName(), true);
             DiskImage source = prepared.sourceFormat().open(new OverlayStorage(image, js, journal.ranges,
                     prepared.plan().originalLength()), new OpenContext(file.path(), true, file.backing(), false))) {
            Allocators.Allocator alloc = placement.newAllocator();
            LayoutBuilder b = prepared.target().layoutBuilder(prepared.spec(), prepared.defaults(),
                    new WritingSpace(alloc, image));
            Mover mover = new Mover(image, placement.clusterSize());
            LayoutFeed.feed(source, b, placement, prepared.hasBacking(), alloc, cancel, clock, "write",
                    (unit, dest, why) -> mover.copy(source, unit.guestOffset, unit.length, dest));
            if (!b.finish().equals(prepared.commit())) {
                throw new IllegalStateException("target builder is not deterministic (its commit record differs "
                        + "from the plan)");
            }
            clock.phase("sync");
            image.sync();
            cancel.check(); // the last moment to stop: after the switch the target is the image
            clock.phase("switch");
            new CommitRecord(journal.commit).apply(image);
        }
    }

    private void checkedWrite(Storage image, ByteBuffer data, long offset) throws IOException {
        long end = offset + data.remaining();
        long below = Math.min(end, prepared.plan().originalLength());
        if (offset < below && !prepared.writes().covers(offset, below)) {
            throw new IllegalStateException(String.format(
                    "write at 0x%x+0x%x is outside the journaled ranges", offset, data.remaining()));
        }
        image.write(data, offset);
    }

    /** The real run's space: the plan's allocator, writes checked against the journal. */
    private final class WritingSpace implements HostSpace {
        private final Allocators.Allocator alloc;
        private final Storage image;

        WritingSpace(Allocators.Allocator alloc, Storage image) {
            this.alloc = alloc;
            this.image = image;
        }

        @Override
        public long allocate(long length, long alignment) throws IOException {
            return alloc.allocate(length, alignment);
        }

        @Override
        public void write(long hostOffset, ByteBuffer data) throws IOException {
            checkedWrite(image, data, hostOffset);
        }
    }

    /** Copies a unit's guest data (read through the source chain) to its new cluster. */
    private final class Mover {
        private final Storage image;
        private final ByteBuffer buf;

        Mover(Storage image, long cluster) {
            this.image = image;
            this.buf = ByteBuffer.allocate(Math.toIntExact(cluster));
        }

        void copy(DiskImage source, long guestOffset, long length, long dest) throws IOException {
            buf.clear().limit((int) length);
            source.read(buf, guestOffset);
            Arrays.fill(buf.array(), (int) length, buf.capacity(), (byte) 0);
            buf.clear();
            checkedWrite(image, buf, dest);
        }
    }
}
