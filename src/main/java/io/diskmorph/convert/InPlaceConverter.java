package io.diskmorph.convert;

import io.diskmorph.image.CorruptImageException;
import io.diskmorph.image.CreateSpec;
import io.diskmorph.image.DiskImage;
import io.diskmorph.image.FormatRegistry;
import io.diskmorph.image.HostSpace;
import io.diskmorph.image.ImageException;
import io.diskmorph.image.ImageFormat;
import io.diskmorph.image.ImageInfo;
import io.diskmorph.image.InterruptedConversionException;
import io.diskmorph.image.LayoutBuilder;
import io.diskmorph.image.LayoutTarget;
import io.diskmorph.image.NotEnoughSpaceException;
import io.diskmorph.image.OpenContext;
import io.diskmorph.image.UnsupportedFeatureException;
import io.diskmorph.storage.ForwardingStorage;
import io.diskmorph.storage.Storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

/**
 * In-place conversion: turns the image in a file into another format inside
 * the same file, keeping guest data where it is.
 *
 * <p>Protocol (a rollback journal around a single header switch):
 * <ol>
 * <li>Plan, read-only: walk the source in target clusters (keep / move /
 *     zero / unallocated), run the target's {@link LayoutBuilder} in a dry run
 *     over a recording {@link HostSpace}: that gives every byte range the
 *     conversion will write, the header, and the final length.</li>
 * <li>Journal: save the original bytes of every range inside the original
 *     file that will be overwritten (plus the tail a shrink would cut, when a
 *     rollback record is kept), with the original length and the target's
 *     first header sector; sync it and its directory.</li>
 * <li>Write: run the builder again for real (deterministic, same placement);
 *     moving units are copied. The source is read through
 *     {@link OverlayStorage}, which serves overwritten ranges from the
 *     journal, so the order of writes never matters. Sync.</li>
 * <li>Switch: write the first header sector, sync. This is the commit point.</li>
 * <li>Clean up: set the final length, sync, retire the journal (or keep it
 *     as the rollback record), sync the directory.</li>
 * </ol>
 * A crash anywhere leaves either the untouched source, the finished target,
 * or a state {@link Recovery#recover} turns into one of them.
 */
public final class InPlaceConverter {
    private static final int SECTOR = 512;

    private InPlaceConverter() {
    }

    /**
     * @param sourceFormat forced source format, or null to probe
     * @param options      target -o options
     */
    public record Request(String sourceFormat, String targetFormat, Map<String, String> options,
                          boolean keepRollback) {
    }

    /** Phase and progress notifications (the CLI's -p). */
    public interface Progress {
        Progress NONE = (phase, done, total) -> {
        };

        void update(String phase, long done, long total);
    }

    /** Plans without writing anything. */
    public static ConversionPlan plan(ConversionFile file, Request request) throws IOException {
        return new Run(file, request, Progress.NONE).plan().plan;
    }

    /** Plans, journals, converts and commits. Returns the plan that was carried out. */
    public static ConversionPlan convert(ConversionFile file, Request request, Progress progress) throws IOException {
        Run run = new Run(file, request, progress).plan();
        run.execute();
        return run.plan;
    }

    /** One conversion: the state shared by its planning and writing passes. */
    private static final class Run {
        private final ConversionFile file;
        private final Request request;
        private final Progress progress;
        private final ConversionPlan plan = new ConversionPlan();
        private ImageFormat sourceFormat;
        private LayoutTarget target;
        private CreateSpec spec;
        private LayoutTarget.TargetDefaults defaults;
        private boolean hasBacking;
        private long identityHolesBelow;
        /** The data clusters kept in place, before identity holes are added (null until then). */
        private ClusterBitmap keptData;
        private long cluster;
        private long zoneClusters;
        private ClusterBitmap kept;
        private long dataEndClusters; // dense policy only
        private long keptEnd; // end of the highest kept cluster
        private boolean dense;
        private final ByteRanges writes = new ByteRanges();
        private List<long[]> segments; // ranges to journal, split at data/hole boundaries
        private String phaseName;
        private long phaseStart;
        private byte[] header;
        private long units;

        Run(ConversionFile file, Request request, Progress progress) {
            this.file = file;
            this.request = request;
            this.progress = progress;
        }

        /** Closes the running phase's timing and starts the next (null: none). */
        private void phase(String name) {
            long now = System.nanoTime();
            if (phaseName != null) {
                plan.phaseSeconds.merge(phaseName, (now - phaseStart) / 1e9, Double::sum);
            }
            phaseName = name;
            phaseStart = now;
            if (name != null) {
                progress.update(name, 0, 0);
            }
        }

        Run plan() throws IOException {
            Storage image = file.image();
            plan.originalLength = image.size();
            sourceFormat = request.sourceFormat() != null ? FormatRegistry.byName(request.sourceFormat())
                    : FormatRegistry.probe(image);
            ImageFormat tf = FormatRegistry.byName(request.targetFormat());
            if (!(tf instanceof LayoutTarget lt)) {
                throw new UnsupportedFeatureException("in-place conversion to " + tf.name() + " is not supported");
            }
            target = lt;
            for (String name : request.options().keySet()) {
                String why = lt.notInPlace(name);
                if (why != null) {
                    throw new io.diskmorph.image.InvalidRequestException(tf.name() + " option " + name
                            + " does not apply to an in-place conversion: " + why);
                }
            }
            plan.sourceFormat = sourceFormat.name();
            plan.targetFormat = tf.name();
            plan.keepRollback = request.keepRollback();
            if (file.dir().exists(file.journalName())) {
                throw new InterruptedConversionException(file.path() != null ? file.path().toString() : file.name(),
                        file.journalName());
            }
            try (DiskImage source = openSource(new ReadOnlyView(image))) {
                checkSource(source);
                plan.virtualSize = source.virtualSize();
                hasBacking = source.backingFileName() != null;
                spec = new CreateSpec(source.virtualSize(), request.options(), source.backingFileName(),
                        source.backingFormat());
                defaults = new LayoutTarget.TargetDefaults(source.clusterSize(),
                        sourceFormat.name().equals(tf.name()) ? source.creationOptions() : java.util.Map.of());
                LayoutBuilder rulesBuilder = target.layoutBuilder(spec, defaults, new RecordingSpace(
                        new Allocators.FirstFit(new ClusterBitmap(), 1 << 16, 1)));
                cluster = rulesBuilder.clusterSize();
                zoneClusters = Math.ceilDiv(rulesBuilder.headerZone(), cluster);
                plan.clusterSize = cluster;
                dense = target.unreferencedSpaceIsLeak();
                plan.policy = dense ? "dense" : "first-fit";
                identityHolesBelow = dense && plan.sourceFormat.equals("raw") ? lastDataEnd(image) : 0;
                phase("survey");
                survey(source, rulesBuilder);
                if (dense && !plan.sourceFormat.equals("raw") && !hasBacking && image.nextHole(0) < keptEnd) {
                    // (a second walk, only when the file has a hole below its last kept data cluster) holes
                    // of the file there, where the guest reads zeros, map
                    // onto themselves: the data above them then need not move down to fill them
                    identityHolesBelow = keptEnd;
                    keptData = kept;
                    units = 0;
                    survey(source, rulesBuilder);
                }
                phase("plan");
                dryRun(source);
            }
            finishPlan();
            phase(null);
            return this;
        }

        private DiskImage openSource(Storage view) throws IOException {
            return sourceFormat.open(view, new OpenContext(file.path(), true, file.backing(), false));
        }

        /** Refuses what the target cannot hold or what would not be safe to convert. */
        private void checkSource(DiskImage source) throws IOException {
            ImageInfo info = source.info();
            if (info.encrypted()) {
                throw new UnsupportedFeatureException("encrypted images cannot be converted in place");
            }
            if (!info.snapshots().isEmpty()) {
                throw new UnsupportedFeatureException("image has " + info.snapshots().size()
                        + " internal snapshot(s); in-place conversion cannot carry them yet (delete them with "
                        + "'qemu-img snapshot -d' or use a copy conversion)");
            }
            if (info.dirty()) {
                throw new UnsupportedFeatureException("image is marked dirty (not cleanly closed); run "
                        + "'diskmorph check -r all' first");
            }
            if (source.dataStorage() != source.storage()) {
                throw new UnsupportedFeatureException("images with an external data file cannot be converted in place");
            }
        }

        /** End of the last data byte of a raw file (its holes below this stay as sparse data). */
        private static long lastDataEnd(Storage raw) throws IOException {
            long end = 0;
            long size = raw.size();
            for (long pos = raw.nextData(0); pos < size; pos = raw.nextData(end)) {
                end = raw.nextHole(pos);
            }
            return end;
        }

        private UnitWalker.Rules rules(LayoutBuilder b) {
            return new UnitWalker.Rules() {
                @Override
                public long clusterSize() {
                    return b.clusterSize();
                }

                @Override
                public long headerZone() {
                    return b.headerZone();
                }

                @Override
                public boolean canKeepDataAt(long hostOffset) {
                    return b.canKeepDataAt(hostOffset);
                }

                @Override
                public boolean supportsZeroClusters() {
                    return b.supportsZeroClusters();
                }

                @Override
                public boolean hostKeepsData(long hostOffset) {
                    return keptData != null && keptData.get(hostOffset / cluster);
                }
            };
        }

        /** First walk: which clusters stay, how much moves, and whether any host cluster is used twice. */
        private void survey(DiskImage source, LayoutBuilder rulesBuilder) throws IOException {
            kept = new ClusterBitmap();
            UnitWalker w = new UnitWalker(source, rules(rulesBuilder), hasBacking, identityHolesBelow);
            long moves = 0;
            while (w.next()) {
                units++;
                if (w.kind == UnitWalker.Kind.KEEP) {
                    keptEnd = Math.max(keptEnd, w.host + cluster);
                    if (!kept.set(w.host / cluster)) {
                        throw new CorruptImageException(plan.sourceFormat + " mapping", w.host,
                                "host cluster is used by two guest clusters");
                    }
                } else if (w.kind == UnitWalker.Kind.MOVE) {
                    moves++;
                }
            }
            dataEndClusters = zoneClusters + kept.count() + moves;
        }

        private Allocators.Allocator newAllocator() {
            return dense ? new Allocators.Dense(kept, cluster, zoneClusters, dataEndClusters)
                    : new Allocators.FirstFit(kept.copy(), cluster, zoneClusters);
        }

        /** Second walk: the builder over a recording space; gives every write and the header. */
        private void dryRun(DiskImage source) throws IOException {
            Allocators.Allocator alloc = newAllocator();
            RecordingSpace space = new RecordingSpace(alloc);
            LayoutBuilder b = target.layoutBuilder(spec, defaults, space);
            walk(source, b, alloc, null, true);
            header = b.finish();
            checkHeader(b);
            plan.metadataBytes = space.bytes;
            plan.headerBytes = header.length;
            writes.add(0, Math.max(header.length, SECTOR)); // the switch writes a whole sector
            long end = Math.max(alloc.highWater(), header.length);
            long required = b.requiredFileLength();
            if (dense) {
                plan.finalLength = Math.max(Math.max(end, dataEndClusters * cluster), required);
            } else {
                // dead source metadata past the last used cluster is cut off
                plan.finalLength = Math.max(Math.max(keptEnd, end), required);
            }
        }

        private void checkHeader(LayoutBuilder b) throws ImageException {
            if (header.length == 0) {
                throw new IllegalStateException("target builder returned no header");
            }
            if (header.length > b.headerZone()) {
                throw new IllegalStateException("target header is larger than its zone");
            }
        }

        /**
         * Feeds the builder in guest order. Moving and relocated units get a
         * cluster from the allocator; when {@code mover} is set their data is
         * copied there.
         */
        private void walk(DiskImage source, LayoutBuilder b, Allocators.Allocator alloc, Mover mover,
                          boolean count) throws IOException {
            UnitWalker w = new UnitWalker(source, rules(b), hasBacking, identityHolesBelow);
            long relocateFrom = alloc instanceof Allocators.Dense d ? d.relocateFrom() : Long.MAX_VALUE;
            long done = 0;
            while (w.next()) {
                switch (w.kind) {
                    case SKIP -> {
                    }
                    case ZERO -> {
                        b.addZero(w.guestOffset);
                        if (count) {
                            plan.zeroClusters++;
                        }
                    }
                    case KEEP -> {
                        if (w.host / cluster >= relocateFrom) {
                            long dest = alloc.allocateUnit();
                            moveUnit(mover, source, w, dest);
                            if (count) {
                                plan.addMoved(MoveReason.COMPACTED, w.length);
                            }
                            b.addData(w.guestOffset, dest);
                        } else {
                            if (count) {
                                plan.keptUnits++;
                                plan.keptBytes += w.length;
                            }
                            b.addData(w.guestOffset, w.host);
                        }
                    }
                    case MOVE -> {
                        long dest = alloc.allocateUnit();
                        moveUnit(mover, source, w, dest);
                        if (count) {
                            plan.addMoved(w.reason, w.length);
                        }
                        b.addData(w.guestOffset, dest);
                    }
                }
                if (++done % 4096 == 0) {
                    progress.update(mover == null ? "plan" : "write", w.guestOffset, plan.virtualSize);
                }
            }
        }

        /** Dry run (no mover): record the destination as written; real run: copy the data. */
        private void moveUnit(Mover mover, DiskImage source, UnitWalker w, long dest) throws IOException {
            if (mover == null) {
                writes.add(dest, dest + cluster);
            } else {
                mover.copy(source, w.guestOffset, w.length, dest);
            }
        }

        private void finishPlan() throws IOException {
            if (request.keepRollback() && plan.finalLength < plan.originalLength) {
                // the rollback record must give back the tail the final truncate cuts
                writes.add(plan.finalLength, plan.originalLength);
            }
            segments = Journal.segments(file.image(), writes.clippedTo(plan.originalLength));
            plan.overwrittenBytes = writes.totalBytes(plan.originalLength);
            plan.journalBytes = Journal.fileSize(segments, plan.sourceFormat, plan.targetFormat);
            long growth = 0;
            for (long[] r : writes.clippedTo(Long.MAX_VALUE)) {
                growth = Math.max(growth, r[1] - plan.originalLength);
            }
            growth = Math.max(growth, plan.finalLength - plan.originalLength);
            plan.extraSpace = plan.journalBytes + Math.max(0, growth);
            plan.availableSpace = file.dir().usableSpace();
        }

        void execute() throws IOException {
            Storage image = file.image();
            if (!plan.enoughSpace()) {
                throw new NotEnoughSpaceException("the in-place conversion (journal and new metadata)",
                        plan.extraSpace, plan.availableSpace);
            }
            byte[] firstSector = Arrays.copyOf(header, SECTOR);
            byte[] current = new byte[SECTOR];
            image.readBytes(0, SECTOR).get(current);
            if (Arrays.equals(firstSector, current)) {
                throw new UnsupportedFeatureException("the target header equals the current one; nothing to convert");
            }
            file.dir().delete(file.rollbackName()); // an older rollback record no longer matches the file
            phase("journal");
            Journal journal;
            try (Storage js = file.dir().create(file.journalName())) {
                journal = Journal.write(js, image, plan.originalLength, plan.finalLength, plan.sourceFormat,
                        plan.targetFormat, firstSector, segments, request.keepRollback() ? Journal.FLAG_KEEP_ROLLBACK : 0);
            }
            file.dir().sync();

            // From here on the image changes; every write below the original end is in the journal.
            phase("write");
            try {
                writeAndSwitch(image, journal, firstSector);
            } catch (IOException | RuntimeException e) {
                // a source that turns out unreadable while its data is copied (a corrupt compressed
                // cluster, say) is a refusal too: put the original bytes back so the file is as it was
                try {
                    Recovery.restore(file, journal);
                } catch (IOException | RuntimeException r) {
                    e.addSuppressed(r); // the journal stays; 'diskmorph recover' finishes the job
                }
                throw e;
            }
            phase("cleanup");
            Recovery.finishCommitted(file, journal);
            phase(null);
        }

        /** Writes the target's data and metadata, then the header sector: the commit point. */
        private void writeAndSwitch(Storage image, Journal journal, byte[] firstSector) throws IOException {
            try (Storage js = file.dir().open(file.journalName(), true);
                 DiskImage source = openSource(new OverlayStorage(image, js, journal.ranges, plan.originalLength))) {
                Allocators.Allocator alloc = newAllocator();
                LayoutBuilder b = target.layoutBuilder(spec, defaults, new WritingSpace(alloc, image));
                walk(source, b, alloc, new Mover(image, cluster), false);
                byte[] realHeader = b.finish();
                if (!Arrays.equals(realHeader, header)) {
                    throw new IllegalStateException("target builder is not deterministic (header differs from the plan)");
                }
                if (header.length > SECTOR) {
                    checkedWrite(image, ByteBuffer.wrap(header, SECTOR, header.length - SECTOR), SECTOR);
                }
                phase("sync");
                image.sync();
                // the switch: one sector, then durable
                phase("switch");
                image.write(ByteBuffer.wrap(firstSector), 0);
                image.sync();
            }
        }

        private void checkedWrite(Storage image, ByteBuffer data, long offset) throws IOException {
            long end = offset + data.remaining();
            long below = Math.min(end, plan.originalLength);
            if (offset < below && !writes.covers(offset, below)) {
                throw new IllegalStateException(String.format(
                        "write at 0x%x+0x%x is outside the journaled ranges", offset, data.remaining()));
            }
            image.write(data, offset);
        }

        /** Records builder writes in the dry run. */
        private final class RecordingSpace implements HostSpace {
            private final Allocators.Allocator alloc;
            long bytes;

            RecordingSpace(Allocators.Allocator alloc) {
                this.alloc = alloc;
            }

            @Override
            public long allocate(long length, long alignment) throws IOException {
                return alloc.allocate(length, alignment);
            }

            @Override
            public void write(long hostOffset, ByteBuffer data) {
                writes.add(hostOffset, hostOffset + data.remaining());
                bytes += data.remaining();
            }
        }

        /** The real run's space: same allocator, writes checked against the journal. */
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
                java.util.Arrays.fill(buf.array(), (int) length, buf.capacity(), (byte) 0);
                buf.clear();
                checkedWrite(image, buf, dest);
            }
        }
    }

    /** A read-only, non-owning view so opening the source never closes or writes the image. */
    static final class ReadOnlyView extends ForwardingStorage {
        ReadOnlyView(Storage s) {
            super(s);
        }

        @Override
        public void write(ByteBuffer src, long position) throws IOException {
            throw new IOException("read-only view");
        }

        @Override
        public void sync() {
        }

        @Override
        public void truncate(long size) throws IOException {
            throw new IOException("read-only view");
        }

        @Override
        public void punchHole(long offset, long length) throws IOException {
            throw new IOException("read-only view");
        }

        @Override
        public boolean isReadOnly() {
            return true;
        }

        @Override
        public void close() {
        }
    }
}
