package io.diskmorph.convert;

import io.diskmorph.image.CommitRecord;
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
    /** The file system block the extra-space bound counts in (ext4, XFS, btrfs default). */
    private static final long FS_BLOCK = 4096;
    private static final int WITNESSES = 8;

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
        return new Run(file, request, Progress.NONE, Cancellation.NONE).plan().plan;
    }

    /** Plans, journals, converts and commits. Returns the plan that was carried out. */
    public static ConversionPlan convert(ConversionFile file, Request request, Progress progress) throws IOException {
        return convert(file, request, progress, Cancellation.NONE);
    }

    /**
     * Plans, journals, converts and commits, unless {@code cancel} is
     * requested before the commit point: then the original bytes are put
     * back and {@link Cancellation.CancelledException} is thrown (a request
     * after the commit point lets the conversion finish). Returns the plan
     * that was carried out; nothing is written when the plan finds nothing
     * to change ({@link ConversionPlan#nothingToChange}).
     */
    public static ConversionPlan convert(ConversionFile file, Request request, Progress progress,
                                         Cancellation cancel) throws IOException {
        Run run = new Run(file, request, progress, cancel).plan();
        if (!run.plan.nothingToChange) {
            run.execute();
        }
        return run.plan;
    }

    /** One conversion: the state shared by its planning and writing passes. */
    private static final class Run {
        private final ConversionFile file;
        private final Request request;
        private final Progress progress;
        private final Cancellation cancel;
        private final ConversionPlan plan = new ConversionPlan();
        private ImageFormat sourceFormat;
        private LayoutTarget target;
        private CreateSpec spec;
        private LayoutTarget.TargetDefaults defaults;
        private boolean hasBacking;
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
        private io.diskmorph.storage.FileIdentity identity;
        private CommitRecord commit;
        private List<long[]> witnesses;

        Run(ConversionFile file, Request request, Progress progress, Cancellation cancel) {
            this.file = file;
            this.request = request;
            this.progress = progress;
            this.cancel = cancel;
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
                throw new InterruptedConversionException(file.displayName(), file.journalName());
            }
            identity = file.dir().identity(file.name());
            if (identity.links() > 1) {
                // the journal sits beside one name: an interrupted conversion would go unnoticed through the
                // others (and every other name, a backup's hard link say, would change format too)
                throw new UnsupportedFeatureException(file.displayName() + " has " + identity.links() + " hard "
                        + "links; in-place conversion changes the file behind every one of them and its journal "
                        + "would be found through this name only (convert a copy, or remove the other links)");
            }
            plan.replacesRollbackRecord = file.dir().exists(file.rollbackName());
            try (DiskImage source = openSource(new ReadOnlyView(image))) {
                checkSource(source);
                if (sourceFormat.name().equals(tf.name()) && sameOptions(request.options(),
                        source.creationOptions())) {
                    plan.nothingToChange = true;
                    plan.virtualSize = source.virtualSize();
                    plan.finalLength = plan.originalLength;
                    plan.availableSpace = file.dir().usableSpace();
                    phase(null);
                    return this;
                }
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
                phase("survey");
                survey(source, rulesBuilder);
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

        /**
         * True when every option the user gave has the source's value already
         * (same format): the conversion would only rewrite the metadata.
         */
        private static boolean sameOptions(Map<String, String> given, Map<String, String> source) {
            for (Map.Entry<String, String> e : given.entrySet()) {
                String have = source.get(e.getKey());
                if (have == null || !(have.equalsIgnoreCase(e.getValue()) || sameSize(have, e.getValue()))) {
                    return false;
                }
            }
            return true;
        }

        private static boolean sameSize(String a, String b) {
            try {
                return io.diskmorph.image.Sizes.parse(a) == io.diskmorph.image.Sizes.parse(b);
            } catch (IOException | RuntimeException e) {
                return false;
            }
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
            };
        }

        /** First walk: which clusters stay, how much moves, and whether any host cluster is used twice. */
        private void survey(DiskImage source, LayoutBuilder rulesBuilder) throws IOException {
            kept = new ClusterBitmap();
            UnitWalker w = new UnitWalker(source, rules(rulesBuilder), hasBacking);
            long moves = 0;
            while (w.next()) {
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

        /** Second walk: the builder over a recording space; gives every write and the commit record. */
        private void dryRun(DiskImage source) throws IOException {
            Allocators.Allocator alloc = newAllocator();
            RecordingSpace space = new RecordingSpace(alloc);
            LayoutBuilder b = target.layoutBuilder(spec, defaults, space);
            walk(source, b, alloc, null, true);
            commit = b.finish();
            checkCommit();
            plan.metadataBytes = space.bytes;
            plan.headerBytes = commit.bytes();
            long end = alloc.highWater();
            for (CommitRecord.Write w : commit.writes()) {
                writes.add(w.offset(), w.end());
                end = Math.max(end, w.end());
            }
            long required = b.requiredFileLength();
            if (dense) {
                plan.finalLength = Math.max(Math.max(end, dataEndClusters * cluster), required);
                long compacted = plan.movedBytes.getOrDefault(MoveReason.COMPACTED, 0L);
                if (compacted > 0) {
                    plan.notes.add(plan.targetFormat + " may hold no unreferenced space below its end (its checker "
                            + "counts it as leaked): the cheapest layout moves the " + io.diskmorph.image.Sizes.human(
                            compacted) + " of data that lies above free space down into it, and the file ends after "
                            + "the data and tables");
                }
            } else {
                // dead source metadata past the last used cluster is cut off
                plan.finalLength = Math.max(Math.max(keptEnd, end), required);
            }
        }

        /** The commit record may not land on data that stays (the allocator keeps the tables off it). */
        private void checkCommit() {
            for (CommitRecord.Write w : commit.writes()) {
                for (long c = w.offset() / cluster; c * cluster < w.end(); c++) {
                    if (kept.get(c)) {
                        throw new IllegalStateException("the target's commit record at " + w.offset()
                                + " overlaps data kept in place");
                    }
                }
            }
        }

        /**
         * Feeds the builder in guest order. Moving and relocated units get a
         * cluster from the allocator; when {@code mover} is set their data is
         * copied there.
         */
        private void walk(DiskImage source, LayoutBuilder b, Allocators.Allocator alloc, Mover mover,
                          boolean count) throws IOException {
            UnitWalker w = new UnitWalker(source, rules(b), hasBacking);
            long relocateFrom = alloc instanceof Allocators.Dense d ? d.relocateFrom() : Long.MAX_VALUE;
            long done = 0;
            while (w.next()) {
                cancel.check();
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
            if (count) {
                plan.zeroedDataBytes = w.zeroedDataBytes;
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
            witnesses = witnessRanges();
            segments = Journal.segments(file.image(), writes.clippedTo(plan.originalLength));
            plan.overwrittenBytes = writes.totalBytes(plan.originalLength);
            plan.journalBytes = Journal.fileSize(segments, plan.sourceFormat, plan.targetFormat, commit.writes(),
                    witnesses.size());
            plan.extraSpace = extraSpaceBound();
            plan.availableSpace = file.dir().usableSpace();
            String qemuNote = target.qemuCheckNote(cluster, plan.finalLength);
            if (qemuNote != null) {
                plan.notes.add(qemuNote);
            }
        }

        /**
         * A bound on the disk space the run allocates beyond the original
         * file, in file system blocks (what du counts, not file lengths): the
         * journal, every block written in a hole of the original file, every
         * block written past its end, and the file system's own bookkeeping
         * of that many new extents.
         */
        private long extraSpaceBound() {
            long blocks = Math.ceilDiv(plan.journalBytes, FS_BLOCK);
            long regions = 1;
            for (long[] seg : segments) {
                if (seg[2] == 0) { // a hole of the file that the conversion writes: it becomes allocated
                    blocks += blockSpan(seg[0], seg[1]);
                    regions++;
                }
            }
            for (long[] r : writes.clippedTo(Long.MAX_VALUE)) {
                long from = Math.max(r[0], plan.originalLength);
                if (from < r[1]) {
                    blocks += blockSpan(from, r[1]);
                    regions++;
                }
            }
            // ext4 keeps up to 340 extents per 4 KiB extent-tree block; a new file needs an inode's worth more
            long bookkeeping = Math.ceilDiv(regions, 256) + 16;
            return (blocks + bookkeeping) * FS_BLOCK;
        }

        private static long blockSpan(long start, long end) {
            return Math.ceilDiv(end, FS_BLOCK) - start / FS_BLOCK;
        }

        /**
         * Up to eight 4 KiB ranges, spread over the file, that the conversion
         * never writes and never cuts off: recover checks them to make sure a
         * journal is applied only to the file it was written for.
         */
        private List<long[]> witnessRanges() {
            long limit = Math.min(plan.originalLength, plan.finalLength) / FS_BLOCK * FS_BLOCK;
            List<long[]> gaps = new java.util.ArrayList<>();
            long pos = 0;
            for (long[] r : writes.clippedTo(limit)) {
                if (r[0] - pos >= FS_BLOCK) {
                    gaps.add(new long[]{pos, r[0]});
                }
                pos = Math.max(pos, r[1]);
            }
            if (limit - pos >= FS_BLOCK) {
                gaps.add(new long[]{pos, limit});
            }
            List<long[]> out = new java.util.ArrayList<>();
            for (int k = 0; k < WITNESSES && !gaps.isEmpty(); k++) {
                long want = limit / WITNESSES * k;
                long[] best = null;
                for (long[] g : gaps) { // the first gap that ends past the wanted offset
                    if (g[1] - FS_BLOCK >= want) {
                        best = g;
                        break;
                    }
                }
                if (best == null) {
                    break;
                }
                long at = Math.min(Math.max(want, best[0]), best[1] - FS_BLOCK);
                at = Math.max(best[0], at / 512 * 512);
                if (out.isEmpty() || out.get(out.size() - 1)[0] + FS_BLOCK <= at) {
                    out.add(new long[]{at, FS_BLOCK});
                }
            }
            return out;
        }

        void execute() throws IOException {
            Storage image = file.image();
            if (!plan.enoughSpace()) {
                throw new NotEnoughSpaceException("the in-place conversion (journal and new metadata)",
                        plan.extraSpace, plan.availableSpace);
            }
            if (Journal.holds(image, commit.commitPoint().offset(), commit.commitPoint().bytes())) {
                // recovery would take the untouched source for a committed target
                throw new UnsupportedFeatureException("the target's commit record equals what the file holds "
                        + "already; nothing to convert");
            }
            cancel.check();
            file.dir().delete(file.rollbackName()); // an older rollback record no longer matches the file
            phase("journal");
            Journal journal;
            try (Storage js = file.dir().create(file.journalName())) {
                journal = Journal.write(js, image, plan.originalLength, plan.finalLength, plan.sourceFormat,
                        plan.targetFormat, identity, commit.writes(), witnesses, segments,
                        request.keepRollback() ? Journal.FLAG_KEEP_ROLLBACK : 0);
            }
            file.dir().sync();
            if (cancel.requested()) {
                // the image is untouched: the journal just goes
                file.dir().delete(file.journalName());
                file.dir().sync();
                cancel.check();
            }

            // From here on the image changes; every write below the original end is in the journal.
            phase("write");
            try {
                writeAndSwitch(image, journal);
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

        /** Writes the target's data and metadata, then the commit record: the commit point. */
        private void writeAndSwitch(Storage image, Journal journal) throws IOException {
            try (Storage js = file.dir().open(file.journalName(), true);
                 DiskImage source = openSource(new OverlayStorage(image, js, journal.ranges, plan.originalLength))) {
                Allocators.Allocator alloc = newAllocator();
                LayoutBuilder b = target.layoutBuilder(spec, defaults, new WritingSpace(alloc, image));
                walk(source, b, alloc, new Mover(image, cluster), false);
                if (!b.finish().equals(commit)) {
                    throw new IllegalStateException("target builder is not deterministic (its commit record differs "
                            + "from the plan)");
                }
                phase("sync");
                image.sync();
                cancel.check(); // the last moment to stop: after the switch the target is the image
                phase("switch");
                new CommitRecord(journal.commit).apply(image);
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
