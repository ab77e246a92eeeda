package io.diskmorph.convert;

import io.diskmorph.image.CheckReport;
import io.diskmorph.image.CommitRecord;
import io.diskmorph.image.CorruptImageException;
import io.diskmorph.image.CreateSpec;
import io.diskmorph.image.DiskImage;
import io.diskmorph.image.FormatRegistry;
import io.diskmorph.image.HostSpace;
import io.diskmorph.image.ImageFormat;
import io.diskmorph.image.ImageInfo;
import io.diskmorph.image.InterruptedConversionException;
import io.diskmorph.image.InvalidRequestException;
import io.diskmorph.image.LayoutBuilder;
import io.diskmorph.image.LayoutTarget;
import io.diskmorph.image.Mapping;
import io.diskmorph.image.OpenContext;
import io.diskmorph.image.RepairMode;
import io.diskmorph.image.Sizes;
import io.diskmorph.image.UnsupportedFeatureException;
import io.diskmorph.storage.FileIdentity;
import io.diskmorph.storage.Storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * The read-only half of an in-place conversion: refuses what cannot be
 * converted safely, walks the source in target clusters (the survey), runs
 * the target's builder over a recording space (the dry run), and works out
 * everything the execution needs and the user sees ({@link
 * PreparedConversion}). Writes nothing.
 */
final class Planner {
    /** The file system block the extra-space bound counts in (ext4, XFS, btrfs default). */
    private static final long FS_BLOCK = 4096;
    private static final int WITNESSES = 8;

    private final ConversionFile file;
    private final InPlaceConverter.Request request;
    private final Cancellation cancel;
    private final PhaseClock clock;
    private final ConversionPlan.Draft plan = new ConversionPlan.Draft();
    private final ByteRanges writes = new ByteRanges();
    /** End of the highest kept cluster (found by the survey). */
    private long keptEnd;
    private final PlanObserver observer;

    private Planner(ConversionFile file, InPlaceConverter.Request request, Cancellation cancel, PhaseClock clock,
                    PlanObserver observer) {
        this.file = file;
        this.request = request;
        this.cancel = cancel;
        this.clock = clock;
        this.observer = observer;
    }

    static PreparedConversion plan(ConversionFile file, InPlaceConverter.Request request, Cancellation cancel,
                                   PhaseClock clock) throws IOException {
        return plan(file, request, cancel, clock, PlanObserver.NONE);
    }

    /** The plan, the dry run's decisions told to {@code observer} as they are made. */
    static PreparedConversion plan(ConversionFile file, InPlaceConverter.Request request, Cancellation cancel,
                                   PhaseClock clock, PlanObserver observer) throws IOException {
        return new Planner(file, request, cancel, clock, observer).plan();
    }

    private PreparedConversion plan() throws IOException {
        Storage image = file.image();
        plan.originalLength = image.size();
        ImageFormat sourceFormat = request.sourceFormat() != null ? FormatRegistry.byName(request.sourceFormat())
                : FormatRegistry.probe(image);
        ImageFormat tf = FormatRegistry.byName(request.targetFormat());
        if (!tf.canWrite()) {
            throw tf.writingNotSupported(); // the file is rewritten in the target's terms; the source is only read
        }
        if (!(tf instanceof LayoutTarget target)) {
            throw new UnsupportedFeatureException("in-place conversion to " + tf.name() + " is not supported");
        }
        for (String name : request.options().keySet()) {
            String why = target.notInPlace(name);
            if (why != null) {
                throw new InvalidRequestException(tf.name() + " option " + name
                        + " does not apply to an in-place conversion: " + why);
            }
        }
        plan.sourceFormat = sourceFormat.name();
        plan.targetFormat = tf.name();
        plan.keepRollback = request.keepRollback();
        if (file.dir().exists(file.journalName())) {
            throw new InterruptedConversionException(file.displayName(), file.journalName());
        }
        FileIdentity identity = file.dir().identity(file.name());
        if (identity.links() > 1) {
            // the journal sits beside one name: an interrupted conversion would go unnoticed through the
            // others (and every other name, a backup's hard link say, would change format too)
            throw new UnsupportedFeatureException(file.displayName() + " has " + identity.links() + " hard "
                    + "links; in-place conversion changes the file behind every one of them and its journal "
                    + "would be found through this name only (convert a copy, or remove the other links)");
        }
        plan.replacesRollbackRecord = file.dir().exists(file.rollbackName());
        plan.availableSpace = file.dir().usableSpace();
        try (DiskImage source = openSource(sourceFormat, new InPlaceConverter.ReadOnlyView(image))) {
            clock.phase("check");
            checkSource(source);
            plan.virtualSize = source.virtualSize();
            if (sourceFormat.name().equals(tf.name()) && sameOptions(request.options(), source.creationOptions())) {
                plan.nothingToChange = true;
                plan.finalLength = plan.originalLength;
                return new PreparedConversion(plan.freeze(clock.stop()), sourceFormat, target, null, null, false,
                        null, writes, List.of(), null, List.of(), identity);
            }
            boolean hasBacking = source.backingFileName() != null;
            CreateSpec spec = new CreateSpec(source.virtualSize(), request.options(), source.backingFileName(),
                    source.backingFormat());
            LayoutTarget.TargetDefaults defaults = new LayoutTarget.TargetDefaults(source.clusterSize(),
                    sourceFormat.name().equals(tf.name()) ? source.creationOptions() : Map.of());
            LayoutBuilder rules = target.layoutBuilder(spec, defaults, new RecordingSpace(
                    new Allocators.FirstFit(new ClusterBitmap(), 1 << 16, 1)));
            long cluster = rules.clusterSize();
            long zoneClusters = Math.ceilDiv(rules.headerZone(), cluster);
            plan.clusterSize = cluster;
            boolean dense = target.unreferencedSpaceIsLeak();
            plan.policy = dense ? "dense" : "first-fit";
            clock.phase("survey");
            PreparedConversion.Placement placement = survey(source, rules, hasBacking, cluster, zoneClusters, dense);
            clock.phase("plan");
            CommitRecord commit = dryRun(source, target, spec, defaults, placement, hasBacking);
            List<long[]> witnesses = witnessRanges();
            List<long[]> segments = Journal.segments(image, writes.clippedTo(plan.originalLength));
            plan.overwrittenBytes = writes.totalBytes(plan.originalLength);
            plan.journalBytes = Journal.fileSize(segments, plan.sourceFormat, plan.targetFormat, commit.writes(),
                    witnesses.size());
            plan.extraSpace = extraSpaceBound(segments);
            Long unaligned = plan.movedBytes.get(MoveReason.UNALIGNED);
            if (unaligned != null && unaligned > 0) {
                smallerClusterNote(source, target, spec, defaults, cluster);
            }
            String qemuNote = target.qemuCheckNote(cluster, plan.finalLength);
            if (qemuNote != null) {
                plan.notes.add(qemuNote);
            }
            return new PreparedConversion(plan.freeze(clock.stop()), sourceFormat, target, spec, defaults, hasBacking,
                    placement, writes, segments, commit, witnesses, identity);
        }
    }

    /**
     * The source over a read-only view of the locked file. Its other files
     * (extents) are reachable here, so that an image made of several files
     * opens and is refused by what it is ({@link DiskImage#notInPlaceSource}),
     * not by a file it could not reach.
     */
    private DiskImage openSource(ImageFormat format, Storage view) throws IOException {
        return format.open(view, new OpenContext(file.path(), true, file.backing(), false, false, file.extents()));
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
            return Sizes.parse(a) == Sizes.parse(b);
        } catch (IOException | RuntimeException e) {
            return false;
        }
    }

    /**
     * Refuses what the target cannot hold or what would not be safe to
     * convert: like resize2fs, which will not touch a file system e2fsck has
     * not passed, a source with corruption is refused (leaks are not
     * corruption), and so is one whose backing chain cannot be opened
     * (unless the user said not to open it: --no-backing).
     */
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
        if (source.backingFileName() != null && file.backing() != null) {
            try {
                for (DiskImage layer = source.backing(); layer != null; layer = layer.backing()) {
                    layer.virtualSize(); // opening each layer is the test
                }
            } catch (IOException e) {
                throw new CorruptImageException("backing chain", -1, file.displayName() + ": its backing file cannot "
                        + "be opened (" + oneLine(e) + "); repair the chain, or convert with --no-backing to keep "
                        + "the backing file's name without reading it");
            }
        }
        // after the chain is open: the driver may look at it (a VMDK snapshot's parent CID)
        String why = source.notInPlaceSource();
        if (why != null) {
            throw new UnsupportedFeatureException(file.displayName() + ": " + why);
        }
        CheckReport report;
        try {
            report = source.check(RepairMode.NONE);
        } catch (UnsupportedFeatureException e) {
            return; // the format has no checks (raw)
        }
        if (report.corruptions > 0 || report.failure != null) {
            String first = report.messages.stream().filter(m -> m.startsWith("ERROR")).findFirst()
                    .orElse(report.failure != null ? report.failure : "");
            throw new CorruptImageException(plan.sourceFormat + " metadata", -1, file.displayName() + ": "
                    + (report.corruptions > 0 ? report.corruptions + " corruption(s) found" : "the check failed")
                    + (first.isEmpty() ? "" : " (" + first.strip() + ")") + "; in-place conversion refuses a "
                    + "damaged source: run 'diskmorph check -r all " + file.displayName() + "' first");
        }
    }

    private static String oneLine(Throwable e) {
        String m = e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage();
        int nl = m.indexOf('\n');
        return nl < 0 ? m : m.substring(0, nl);
    }

    /**
     * First walk: which clusters stay, how many move, and whether any host
     * cluster is used twice; also whether a unit needs the backing file's
     * data when that file is not to be read.
     */
    private PreparedConversion.Placement survey(DiskImage source, LayoutBuilder rules, boolean hasBacking,
                                                long cluster, long zoneClusters, boolean dense) throws IOException {
        ClusterBitmap kept = new ClusterBitmap();
        UnitWalker w = new UnitWalker(source, LayoutFeed.rules(rules), hasBacking);
        long moves = 0;
        long keptEnd = 0;
        boolean backingUnread = hasBacking && file.backing() == null;
        while (w.next()) {
            cancel.check();
            if (w.kind == UnitWalker.Kind.KEEP) {
                keptEnd = Math.max(keptEnd, w.host + cluster);
                if (!kept.set(w.host / cluster)) {
                    throw new CorruptImageException(plan.sourceFormat + " mapping", w.host,
                            "host cluster is used by two guest clusters");
                }
            } else if (w.kind == UnitWalker.Kind.MOVE) {
                if (backingUnread && w.reason == MoveReason.MATERIALIZED) {
                    throw new UnsupportedFeatureException(file.displayName() + ": the cluster at guest offset "
                            + w.guestOffset + " is partly the backing file's, whose data --no-backing keeps "
                            + "unread; convert with the backing file reachable");
                }
                moves++;
            }
        }
        this.keptEnd = keptEnd;
        return new PreparedConversion.Placement(cluster, zoneClusters, kept, dense, zoneClusters + kept.count() + moves);
    }

    /** Second walk: the builder over a recording space; gives every write, the figures and the commit record. */
    private CommitRecord dryRun(DiskImage source, LayoutTarget target, CreateSpec spec,
                                LayoutTarget.TargetDefaults defaults, PreparedConversion.Placement placement,
                                boolean hasBacking) throws IOException {
        Allocators.Allocator alloc = placement.newAllocator();
        RecordingSpace space = new RecordingSpace(alloc);
        LayoutBuilder b = target.layoutBuilder(spec, defaults, space);
        long cluster = placement.clusterSize();
        LayoutFeed.feed(source, b, placement, hasBacking, alloc, cancel, clock, "plan", new LayoutFeed.Sink() {
            @Override
            public void moved(UnitWalker unit, long dest, MoveReason why) {
                writes.add(dest, dest + cluster);
                plan.addMoved(why, unit.length);
                observer.data(unit.guestOffset, unit.sourceHost, dest, unit.length);
            }

            @Override
            public void kept(UnitWalker unit) {
                plan.keptUnits++;
                plan.keptBytes += unit.length;
                observer.data(unit.guestOffset, unit.host, unit.host, unit.length);
            }

            @Override
            public void zero(UnitWalker unit) {
                plan.zeroClusters++;
            }

            @Override
            public void done(UnitWalker walker) {
                plan.zeroedDataBytes = walker.zeroedDataBytes;
            }
        });
        CommitRecord commit = b.finish();
        for (CommitRecord.Write w : commit.writes()) { // the allocator keeps the tables off kept data; so too this
            for (long c = w.offset() / cluster; c * cluster < w.end(); c++) {
                if (placement.kept().get(c)) {
                    throw new IllegalStateException("the target's commit record at " + w.offset()
                            + " overlaps data kept in place");
                }
            }
        }
        plan.metadataBytes = space.bytes;
        plan.headerBytes = commit.bytes();
        long end = alloc.highWater();
        for (CommitRecord.Write w : commit.writes()) {
            writes.add(w.offset(), w.end());
            end = Math.max(end, w.end());
            observer.metadata(w.offset(), w.end() - w.offset());
        }
        long required = b.requiredFileLength();
        if (placement.dense()) {
            plan.finalLength = Math.max(Math.max(end, placement.dataEndClusters() * cluster), required);
            long compacted = plan.movedBytes.getOrDefault(MoveReason.COMPACTED, 0L);
            if (compacted > 0) {
                plan.notes.add(plan.targetFormat + " may hold no unreferenced space below its end (its checker "
                        + "counts it as leaked): the cheapest layout moves the " + Sizes.human(compacted)
                        + " of data that lies above free space down into it, and the file ends after the data and "
                        + "tables");
            }
        } else {
            // dead source metadata past the last used cluster is cut off
            plan.finalLength = Math.max(Math.max(keptEnd, end), required);
        }
        if (request.keepRollback() && plan.finalLength < plan.originalLength) {
            // the rollback record must give back the tail the final truncate cuts
            writes.add(plan.finalLength, plan.originalLength);
        }
        return commit;
    }

    /**
     * A bound on the disk space the run allocates beyond the original
     * file, in file system blocks (what du counts, not file lengths): the
     * journal, every block written in a hole of the original file, every
     * block written past its end, and the file system's own bookkeeping
     * of that many new extents.
     */
    private long extraSpaceBound(List<long[]> segments) {
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
        List<long[]> gaps = new ArrayList<>();
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
        List<long[]> out = new ArrayList<>();
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

    /**
     * Data that moves only for want of alignment (a dynamic VHD's blocks lie
     * 512 bytes after their bitmaps, a qemu-made VDI's right after its map)
     * may stay with a smaller target cluster: the plan says how much would
     * stay at each cluster size the target takes below the chosen one.
     * Estimated from the mapping's data runs (whole aligned clusters past
     * the header zone), not by a second survey, so it costs one walk of the
     * mapping's answers.
     */
    /** How the note on smaller target clusters begins (the conversion to raw through qcow2 leaves it out). */
    static final String SMALLER_CLUSTER_NOTE = "data that moves for want of alignment would stay with a smaller "
            + "cluster";

    private void smallerClusterNote(DiskImage source, LayoutTarget target, CreateSpec spec,
                                    LayoutTarget.TargetDefaults defaults, long cluster) throws IOException {
        Allocators.Allocator scratch = new Allocators.FirstFit(new ClusterBitmap(), 1 << 16, 1);
        HostSpace none = new HostSpace() { // a candidate builder is only asked its cluster size and header zone
            @Override
            public long allocate(long length, long alignment) throws IOException {
                return scratch.allocate(length, alignment);
            }

            @Override
            public void write(long hostOffset, ByteBuffer data) {
            }
        };
        StringBuilder note = new StringBuilder();
        for (long c : new long[]{65536, 4096, 512}) {
            if (c >= cluster) {
                continue;
            }
            long zone;
            try {
                Map<String, String> options = new java.util.HashMap<>(spec.options());
                options.put("cluster_size", String.valueOf(c));
                LayoutBuilder b = target.layoutBuilder(new CreateSpec(spec.virtualSize(), options,
                        spec.backingFile(), spec.backingFormat()), defaults, none);
                if (b.clusterSize() != c) {
                    continue;
                }
                zone = b.headerZone();
            } catch (IOException | RuntimeException e) {
                continue; // the target takes no such cluster size
            }
            long stay = keptAt(source, c, zone);
            note.append(note.isEmpty() ? "" : "; ").append("-o cluster_size=").append(c).append(": about ")
                    .append(Sizes.human(stay));
        }
        if (!note.isEmpty()) {
            plan.notes.add(SMALLER_CLUSTER_NOTE + " (kept in place now: " + Sizes.human(plan.keptBytes) + "): " + note);
        }
    }

    /** Guest bytes in whole clusters of {@code c} whose data lies aligned in the file, past the header zone. */
    private long keptAt(DiskImage source, long c, long zone) throws IOException {
        long v = source.virtualSize();
        long total = 0;
        for (long pos = 0; pos < v; ) {
            cancel.check();
            Mapping m = source.mapping(pos, v - pos);
            if (m instanceof Mapping.Data d && (d.file() == null || d.file() == source.storage())
                    && Math.floorMod(pos - d.hostOffset(), c) == 0) {
                long end = pos + d.length();
                long first = Math.ceilDiv(pos, c) * c;
                long zoneGuest = pos + (Math.ceilDiv(zone, c) * c - d.hostOffset()); // guest offset of the zone's end
                first = Math.max(first, zoneGuest);
                long last = end == v ? Math.ceilDiv(v, c) * c : end / c * c;
                if (last > first) {
                    total += dataClusters(source.storage(), d.hostOffset() + (first - pos),
                            d.hostOffset() + (last - pos), c);
                }
            }
            pos += m.length();
        }
        return total;
    }

    /** Bytes of the clusters of {@code c} in [from, to) (aligned) that hold file data, not holes. */
    private static long dataClusters(Storage file, long from, long to, long c) throws IOException {
        long bytes = 0;
        long counted = from; // clusters below this are counted
        for (long pos = from; pos < to; ) {
            long data = file.nextData(pos);
            if (data < 0 || data >= to) {
                break;
            }
            long hole = Math.min(file.nextHole(data), to);
            long start = Math.max(counted, from + (data - from) / c * c);
            long end = Math.min(to, from + Math.ceilDiv(hole - from, c) * c);
            if (end > start) {
                bytes += end - start;
                counted = end;
            }
            pos = hole;
        }
        return bytes;
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
            observer.metadata(hostOffset, data.remaining());
        }
    }
}
