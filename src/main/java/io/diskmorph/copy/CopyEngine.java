package io.diskmorph.copy;

import io.diskmorph.image.AbstractDiskImage;
import io.diskmorph.image.CompressedClusterWriter;
import io.diskmorph.image.DiskImage;
import io.diskmorph.image.InvalidRequestException;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;

/**
 * Copies the guest content of a source image (its whole chain, or only its
 * top layer when the target has a backing file) into a freshly created
 * target, the way qemu-img convert does (qemu-img.c convert_do_copy):
 * driven by the source mapping, so holes and zero ranges are never read;
 * zero detection in the data that is read (-S); whole clusters compressed
 * (-c); writes in guest order, so the target allocates sequentially.
 *
 * <p>Threads: a reader walks the mapping, takes data in chunks of up to
 * 2 MiB (qemu's buffer size) and scans them for zeros while they are hot in
 * the CPU cache; chunks that are one plain extent of a file are mapped
 * ({@link MappedSource}) instead of read, so the data is copied once, by the
 * target write. With -c a pool of workers compresses chunks (at least as
 * many threads as qemu's 4). The calling thread is the only one that touches
 * the target. At most {@code parallel} + 1 chunks are in flight (-m). In
 * guest order by default; with -W the writer takes chunks as they are ready.
 */
public final class CopyEngine {
    /** qemu-img's IO_BUF_SIZE: the unit of reads and writes. */
    static final int CHUNK = 2 << 20;
    /** qemu-img's limit on -m. */
    public static final int MAX_PARALLEL = 16;
    /** Compression threads used at least (as many as qemu's MAX_COMPRESS_THREADS), -m permitting. */
    private static final int MIN_COMPRESSORS = 4;
    /** qemu-img's limit on -S (MAX_BUF_SECTORS). */
    public static final long MAX_SPARSE = 16L << 20;

    /**
     * @param minSparse  -S in bytes: zero runs at least this long are not written (0: write everything,
     *                   the target ends up fully allocated)
     * @param compress   -c: store clusters compressed
     * @param parallel   -m: chunks in flight (1..16)
     * @param outOfOrder -W: allow writes out of guest order
     */
    public record Settings(long minSparse, boolean compress, int parallel, boolean outOfOrder) {
        public Settings {
            if (minSparse < 0 || minSparse % ZeroScan.SECTOR != 0 || minSparse > MAX_SPARSE) {
                throw new IllegalArgumentException("minSparse must be a multiple of 512 up to 16 MiB");
            }
            if (parallel < 1 || parallel > MAX_PARALLEL) {
                throw new IllegalArgumentException("parallel must be 1.." + MAX_PARALLEL);
            }
        }
    }

    /** Progress in bytes of data to copy (qemu-img counts the same: data, and zeros written as data). */
    public interface Progress {
        Progress NONE = (done, total) -> {
        };

        void update(long done, long total);
    }

    private enum Kind { DATA, ZERO, COMPRESSED, END }

    /** One range of guest bytes on its way from the source to the target. */
    private static final class Job {
        /** A chunk job of the free list (false: a job without data, a zero run or the end). */
        final boolean pooled;
        /**
         * A chunk buffer, taken from {@link ChunkBuffers} when the job reads
         * through one and given back once the job is written: data a mapped
         * range serves never needs one.
         */
        ByteBuffer buf;
        /** Where the data is: the job's buffer, or a mapped range of the source file. */
        ByteBuffer data;
        MappedSource.Range mapped;
        Kind kind;
        long offset;
        int length;
        // DATA: runs of sectors to write or to treat as zeros
        int[] runSectors = new int[16];
        boolean[] runData = new boolean[16];
        int runs;
        // COMPRESSED: per cluster the compressed length, RAW or ZERO_CLUSTER, and the compressed bytes
        int[] clusterCode;
        byte[][] compressed;

        Job(boolean pooled) {
            this.pooled = pooled;
        }

        /** A chunk buffer for the job, taken now if it has none, and the data pointed at it. */
        void ownBuffer(ChunkBuffers buffers) {
            if (buf == null) {
                buf = buffers.take();
            }
            data = buf;
        }

        /** The job was written: its chunk buffer, if it took one, goes back for the next job that needs one. */
        void giveBuffer(ChunkBuffers buffers) {
            if (buf != null) {
                buffers.give(buf);
                buf = null;
            }
        }

        /** Before reuse, or at the end: data in the job's own buffer again, a mapped range released. */
        void recycle() {
            if (mapped != null) {
                mapped.release();
                mapped = null;
            }
            data = buf;
        }

        void addRun(int sectors, boolean data) {
            if (runs == runSectors.length) {
                runSectors = Arrays.copyOf(runSectors, runs * 2);
                runData = Arrays.copyOf(runData, runs * 2);
            }
            runSectors[runs] = sectors;
            runData[runs] = data;
            runs++;
        }
    }

    private static final int RAW = -1;
    private static final int ZERO_CLUSTER = -2;

    private final DiskImage source;
    private final DiskImage target;
    private final Settings settings;
    private final boolean targetHasBacking;
    private final long targetBackingSize;
    private final Progress progress;
    /** The target reads zeros wherever it is not written: a new image without a backing file. */
    private final boolean zeroInit;
    /** Guest bytes to walk: the source size rounded up to a sector, as qemu counts it. */
    private final long total;
    private final long cluster;
    private final int chunk;
    private final CompressedClusterWriter compressedTarget;

    private final FreeJobs free;
    private final ChunkBuffers buffers;
    private final BlockingQueue<CompletableFuture<Job>> ready = new LinkedBlockingQueue<>();
    private volatile boolean aborted;
    private MappedSource mappedSource;
    /** Chunk jobs made so far by the reader, as it needs them (at most parallel + 1). */
    private final List<Job> chunkJobs = new ArrayList<>();
    private long progressTotal;
    private long progressDone;
    // what was written (writer thread only)
    private long dataBytes;
    private long compressedBytes;
    private long zeroBytes;

    private CopyEngine(DiskImage source, DiskImage target, Settings settings, boolean targetHasBacking,
                       long targetBackingSize, Progress progress) throws IOException {
        this.source = source;
        this.target = target;
        this.settings = settings;
        this.targetHasBacking = targetHasBacking;
        this.targetBackingSize = targetHasBacking ? targetBackingSize : -1;
        this.progress = progress;
        this.zeroInit = !targetHasBacking && settings.minSparse() > 0;
        this.total = Math.addExact(source.virtualSize(), ZeroScan.SECTOR - 1) & -(long) ZeroScan.SECTOR;
        if (target.virtualSize() < total) {
            throw new InvalidRequestException("target is smaller (" + target.virtualSize() + " bytes) than the "
                    + "source (" + total + " bytes)");
        }
        if (settings.compress()) {
            if (!(target instanceof CompressedClusterWriter c)) {
                throw new InvalidRequestException("compression is not supported by format "
                        + target.format().name());
            }
            compressedTarget = c;
            cluster = c.clusterSize();
            chunk = (int) Math.max(CHUNK, cluster);
        } else {
            compressedTarget = null;
            cluster = ZeroScan.SECTOR;
            chunk = CHUNK;
        }
        this.free = new FreeJobs(Math.max(1, (settings.parallel() + 1) / 2));
        this.buffers = new ChunkBuffers(chunk);
    }

    /**
     * Copies {@code source} into {@code target} (a new image, at least as
     * large). {@code targetHasBacking}: the target has a backing file (-B),
     * whose virtual size is {@code targetBackingSize} (-1 when unknown). The
     * target's metadata is left to the caller's flush.
     */
    public static Written copy(DiskImage source, DiskImage target, Settings settings, boolean targetHasBacking,
                               long targetBackingSize, Progress progress) throws IOException {
        CopyEngine engine = new CopyEngine(source, target, settings, targetHasBacking, targetBackingSize, progress);
        engine.run();
        return new Written(engine.dataBytes, engine.compressedBytes, engine.zeroBytes);
    }

    /**
     * What a copy asked the target to write, in guest bytes.
     *
     * @param dataBytes       written with data (compressed or not)
     * @param compressedBytes of those, stored as compressed clusters
     * @param zeroBytes       written as zeros (zero requests; zeros a new target reads anyway are not written)
     */
    public record Written(long dataBytes, long compressedBytes, long zeroBytes) {
    }

    private void run() throws IOException {
        if (progress != Progress.NONE) {
            progressTotal = countProgressBytes();
            progress.update(0, progressTotal);
        }
        int workers = settings.compress() ? Math.min(settings.parallel(), Math.max(MIN_COMPRESSORS,
                Runtime.getRuntime().availableProcessors())) : 0;
        ExecutorService pool = workers > 0 ? Executors.newFixedThreadPool(workers, daemon("diskmorph-compress"))
                : null;
        BlockingQueue<CompressedClusterWriter.Compressor> compressors = new LinkedBlockingQueue<>();
        Thread reader = null;
        mappedSource = new MappedSource(source);
        try {
            for (int i = 0; i < workers; i++) {
                compressors.add(compressedTarget.newCompressor());
            }
            reader = daemon("diskmorph-reader").newThread(() -> read(pool, compressors));
            reader.start();
            write();
        } finally {
            aborted = true;
            if (reader != null) {
                reader.interrupt();
                joinQuietly(reader);
            }
            boolean stopped = reader == null || !reader.isAlive();
            if (pool != null) {
                pool.shutdownNow();
                stopped &= awaitQuietly(pool);
            }
            for (CompressedClusterWriter.Compressor c : compressors) {
                c.close();
            }
            // a thread still running may read a mapped range: then the windows stay mapped. Otherwise every
            // job gives its range back (written or not, queued for compression and dropped by shutdownNow too)
            if (stopped) {
                releaseUnwritten();
                for (Job j : chunkJobs) {
                    j.recycle();
                }
                mappedSource.close();
            }
        }
    }

    /** After a failure: jobs that were never written give their mapped ranges back. */
    private void releaseUnwritten() {
        for (CompletableFuture<Job> f : ready) {
            // a failed job (the reader interrupted by the abort, say) has nothing to give back, and asking
            // for its value would throw over the failure that aborted the copy
            if (f.isDone() && !f.isCompletedExceptionally()) {
                Job j = f.getNow(null);
                if (j != null) {
                    j.recycle();
                }
            }
        }
        ready.clear();
    }

    // ---- reading (reader thread) ----

    private void read(ExecutorService pool, BlockingQueue<CompressedClusterWriter.Compressor> compressors) {
        long emitted = 0;
        try {
            SourceWalker walker = new SourceWalker(source, total, targetHasBacking, targetBackingSize);
            ZeroScan scan = settings.minSparse() > 0 ? new ZeroScan(settings.minSparse()) : null;
            long pos = 0;
            while (pos < total && !aborted) {
                Step step = step(walker, pos);
                long n = step.length();
                switch (step.status()) {
                    case BACKING -> {
                        // left unallocated: the target's backing file supplies it
                    }
                    case ZERO -> {
                        if (settings.minSparse() == 0) {
                            n = Math.min(n, chunk); // -S 0: zeros are written as data
                            Job job = takeFree();
                            job.ownBuffer(buffers);
                            AbstractDiskImage.fillZero(job.buf.slice(0, (int) padded(n)));
                            dispatch(job, pos, (int) n, null, pool, compressors);
                            emitted++;
                        } else if (!zeroInit) {
                            Job job = new Job(false);
                            job.kind = Kind.ZERO;
                            job.offset = pos;
                            job.length = (int) Math.min(n, Integer.MAX_VALUE & -cluster);
                            n = job.length;
                            emit(CompletableFuture.completedFuture(job));
                            emitted++;
                        }
                    }
                    case DATA -> {
                        n = Math.min(n, chunk);
                        Job job = takeFree();
                        n = readSource(job, pos, (int) n, pos + step.length());
                        dispatch(job, pos, (int) n, scan, pool, compressors);
                        emitted++;
                    }
                }
                pos += n;
            }
            Job end = new Job(false);
            end.kind = Kind.END;
            end.offset = emitted; // with -W the end may overtake jobs still being compressed
            emit(CompletableFuture.completedFuture(end));
        } catch (Throwable e) {
            emit(CompletableFuture.failedFuture(e));
        }
    }

    private record Step(SourceWalker.Status status, long length) {
    }

    /**
     * The range to handle next at {@code pos}: the rest of the source run,
     * or with -c whole clusters only, qemu's rule for compressed targets (a
     * run shorter than a cluster grows to one cluster, read as data).
     */
    private Step step(SourceWalker walker, long pos) throws IOException {
        SourceWalker.Status status = walker.statusAt(pos);
        long n = walker.runEnd() - pos;
        if (settings.compress()) {
            if (n < cluster) {
                return new Step(SourceWalker.Status.DATA, Math.min(cluster, total - pos));
            }
            n &= -cluster;
        }
        return new Step(status, n);
    }

    /** {@code n} rounded up to whole clusters (compressed targets read whole clusters), within a chunk. */
    private long padded(long n) {
        return Math.min(chunk, (n + cluster - 1) & -cluster);
    }

    private Job takeFree() throws InterruptedException {
        Job first = free.poll();
        if (first == null && chunkJobs.size() < settings.parallel() + 1) {
            // buffers are made as the copy needs them: a small image never zeroes all of them
            Job j = new Job(true);
            chunkJobs.add(j);
            return j;
        }
        while (first == null) {
            first = free.awaitBatch();
            if (first == null && aborted) {
                throw new InterruptedException("copy aborted");
            }
        }
        first.recycle();
        return first;
    }

    /**
     * Written jobs on their way back to the reader. The reader, faster than
     * the writer, mostly waits for one; woken for every job, it cost the
     * writer a futex call per chunk (4 ms of a 1.8 GB copy) and itself a
     * sleep and a wake-up per chunk. It is woken once {@code batch} jobs are
     * back and refills the pipeline with them in one go, while the writer
     * still has the other jobs to write (with every job created in flight,
     * all of them come back, so a wait for a batch always ends).
     */
    private static final class FreeJobs {
        private final ConcurrentLinkedQueue<Job> jobs = new ConcurrentLinkedQueue<>();
        private final AtomicInteger count = new AtomicInteger();
        private final int batch;
        private volatile Thread waiter;

        FreeJobs(int batch) {
            this.batch = batch;
        }

        void add(Job j) {
            jobs.add(j);
            int n = count.incrementAndGet();
            Thread w = waiter;
            if (w != null && n >= batch) {
                LockSupport.unpark(w);
            }
        }

        Job poll() {
            Job j = jobs.poll();
            if (j != null) {
                count.decrementAndGet();
            }
            return j;
        }

        /** A job once a batch is back; null after 100 ms without one (the caller checks for an abort). */
        Job awaitBatch() throws InterruptedException {
            waiter = Thread.currentThread();
            try {
                // waiter is set before the count is read and the writer counts before it reads waiter:
                // one of the two sees the other
                if (count.get() < batch) {
                    LockSupport.parkNanos(this, TimeUnit.MILLISECONDS.toNanos(100));
                }
            } finally {
                waiter = null;
            }
            if (Thread.interrupted()) {
                throw new InterruptedException("copy aborted");
            }
            return count.get() >= batch ? poll() : null;
        }
    }

    /**
     * Reads guest bytes (the run of data they belong to ends at {@code runEnd}); the part past the source's end,
     * and the padding to a whole cluster, read as zeros. Returns how many were read: {@code n}, or fewer when
     * only that many are one mapped range.
     */
    private int readSource(Job job, long pos, int n, long runEnd) throws IOException {
        if (padded(n) == n) { // mapped ranges cannot be padded
            MappedSource.Range r = mappedSource.map(pos, n, (int) cluster, runEnd);
            if (r != null) {
                job.mapped = r;
                job.data = r.buffer;
                return r.buffer.capacity();
            }
        }
        job.ownBuffer(buffers);
        long inSource = Math.max(0, Math.min(n, source.virtualSize() - pos));
        if (inSource > 0) {
            source.read(job.buf.slice(0, (int) inSource), pos);
        }
        long padded = padded(n);
        if (padded > inSource) {
            AbstractDiskImage.fillZero(job.buf.slice((int) inSource, (int) (padded - inSource)));
        }
        return n;
    }

    private void dispatch(Job job, long pos, int n, ZeroScan scan, ExecutorService pool,
                          BlockingQueue<CompressedClusterWriter.Compressor> compressors) {
        job.kind = Kind.DATA;
        job.offset = pos;
        job.length = n;
        job.runs = 0;
        if (settings.compress()) {
            job.kind = Kind.COMPRESSED;
            emit(CompletableFuture.supplyAsync(() -> compress(job, compressors), pool));
            return;
        }
        int sectors = (n + ZeroScan.SECTOR - 1) / ZeroScan.SECTOR;
        if (scan == null || scan.surelyData(job.data, sectors, pos / ZeroScan.SECTOR)) {
            job.addRun(sectors, true);
        } else {
            long sector = pos / ZeroScan.SECTOR;
            for (int first = 0; first < sectors; ) {
                boolean data = scan.allocated(job.data, first, sectors - first, sector + first);
                job.addRun(scan.runSectors(), data);
                first += scan.runSectors();
            }
        }
        emit(CompletableFuture.completedFuture(job));
    }

    private void emit(CompletableFuture<Job> f) {
        if (settings.outOfOrder()) {
            f.whenComplete((j, e) -> ready.add(f));
        } else {
            ready.add(f);
        }
    }

    // ---- compressing (worker threads) ----

    private Job compress(Job job, BlockingQueue<CompressedClusterWriter.Compressor> compressors) {
        int clusters = (int) ((job.length + cluster - 1) / cluster);
        if (job.clusterCode == null || job.clusterCode.length < clusters) {
            job.clusterCode = new int[(int) (chunk / cluster)];
            job.compressed = new byte[(int) (chunk / cluster)][];
        }
        CompressedClusterWriter.Compressor c = compressors.poll();
        try {
            for (int i = 0; i < clusters; i++) {
                long off = i * cluster;
                if (settings.minSparse() > 0 && ZeroScan.isZero(job.data, off, cluster)) {
                    job.clusterCode[i] = ZERO_CLUSTER;
                    continue;
                }
                if (job.compressed[i] == null) {
                    job.compressed[i] = new byte[(int) cluster];
                }
                job.clusterCode[i] = c.compress(job.data.slice((int) off, (int) cluster), job.compressed[i]);
            }
            return job;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } finally {
            compressors.add(c);
        }
    }

    // ---- writing (calling thread) ----

    private void write() throws IOException {
        long written = 0;
        long expected = -1;
        while (expected < 0 || written < expected) {
            Job job;
            try {
                job = ready.take().join();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IOException("copy interrupted", e);
            } catch (CompletionException e) {
                throw unwrap(e.getCause());
            }
            if (job.kind == Kind.END) {
                expected = job.offset;
                continue;
            }
            try {
                switch (job.kind) {
                    case DATA -> writeRuns(job);
                    case ZERO -> {
                        target.writeZeroes(job.offset, job.length, true);
                        zeroBytes += job.length;
                    }
                    case COMPRESSED -> writeCompressed(job);
                    default -> throw new IllegalStateException(job.kind.name());
                }
            } catch (Throwable e) {
                job.recycle(); // a mapped range is released even when the write failed
                throw e;
            }
            written++;
            job.giveBuffer(buffers);
            if (job.pooled) {
                progressDone += job.length;
                progress.update(progressDone, progressTotal);
                // a mapped range goes back when the reader takes the job again: dropping its pages
                // (madvise) and unmapping a window (a handshake of every Java thread) cost TLB flushes on
                // the other CPUs, which the writer, the thread every copy waits for, need not wait for
                free.add(job);
            }
        }
    }

    private void writeRuns(Job job) throws IOException {
        int off = 0;
        for (int r = 0; r < job.runs && off < job.length; r++) {
            int bytes = Math.min(job.runSectors[r] * ZeroScan.SECTOR, job.length - off);
            if (job.runData[r]) {
                target.write(job.data.slice(off, bytes), job.offset + off);
                dataBytes += bytes;
            } else if (!zeroInit) {
                target.writeZeroes(job.offset + off, bytes, true);
                zeroBytes += bytes;
            }
            off += bytes;
        }
    }

    private void writeCompressed(Job job) throws IOException {
        int clusters = (int) ((job.length + cluster - 1) / cluster);
        for (int i = 0; i < clusters; i++) {
            int off = (int) (i * cluster);
            long guest = job.offset + off;
            int len = (int) Math.min(cluster, job.length - off);
            int code = job.clusterCode[i];
            if (code == ZERO_CLUSTER) {
                if (!zeroInit) {
                    target.writeZeroes(guest, len, true);
                    zeroBytes += len;
                }
            } else if (code == RAW) {
                target.write(job.data.slice(off, len), guest); // did not compress: stored as is, like qemu
                dataBytes += len;
            } else {
                compressedTarget.writeCompressed(guest, job.compressed[i], code);
                dataBytes += len;
                compressedBytes += len;
            }
        }
    }

    // ---- progress ----

    /** Bytes the progress counts, from a walk of the mapping alone (qemu-img does the same first pass). */
    private long countProgressBytes() throws IOException {
        SourceWalker walker = new SourceWalker(source, total, targetHasBacking, targetBackingSize);
        long sum = 0;
        long pos = 0;
        while (pos < total) {
            Step step = step(walker, pos);
            if (step.status() == SourceWalker.Status.DATA
                    || (step.status() == SourceWalker.Status.ZERO && settings.minSparse() == 0)) {
                sum += step.length();
            }
            pos += step.length();
        }
        return sum;
    }

    // ---- helpers ----

    private static IOException unwrap(Throwable t) {
        Throwable c = t;
        while ((c instanceof CompletionException || c instanceof UncheckedIOException) && c.getCause() != null) {
            c = c.getCause();
        }
        if (c instanceof IOException io) {
            return io;
        }
        if (c instanceof RuntimeException re) {
            throw re;
        }
        if (c instanceof Error err) {
            throw err;
        }
        return new IOException(c);
    }

    private static java.util.concurrent.ThreadFactory daemon(String name) {
        return r -> {
            Thread t = new Thread(r, name);
            t.setDaemon(true);
            return t;
        };
    }

    /**
     * Waits for the thread to end, through interrupts too (the flag is set
     * again afterwards): its mapped ranges must not be unmapped under it.
     */
    private static void joinQuietly(Thread t) {
        boolean interrupted = false;
        while (t.isAlive()) {
            try {
                t.join();
            } catch (InterruptedException e) {
                interrupted = true;
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
    }

    /** Whether the pool's threads ended (within a minute). */
    private static boolean awaitQuietly(ExecutorService pool) {
        try {
            return pool.awaitTermination(1, TimeUnit.MINUTES);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return pool.isTerminated();
        }
    }

}
