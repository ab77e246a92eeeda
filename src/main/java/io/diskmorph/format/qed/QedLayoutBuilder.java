package io.diskmorph.format.qed;

import io.diskmorph.image.CommitRecord;
import io.diskmorph.image.CreateSpec;
import io.diskmorph.image.FormatOptions;
import io.diskmorph.image.HostSpace;
import io.diskmorph.image.InvalidRequestException;
import io.diskmorph.image.LayoutBuilder;
import io.diskmorph.image.LayoutTarget.TargetDefaults;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * Builds QED metadata over guest clusters that stay where they are: one L1
 * table (allocated first, so a created image has qemu's layout: header,
 * L1, then L2 tables), one L2 table per L1 entry that has announced
 * clusters, streamed out page by page as the guest offsets advance. Memory
 * is two table pages whatever the disk or table size.
 *
 * <p>qemu rules kept here: every table and data cluster must lie below the
 * file length rounded down to the cluster size (so {@link #requiredFileLength}
 * is the end of the last referenced cluster), and every cluster between the
 * header and that length must be referenced, or qemu-img check reports it as
 * leaked.
 */
final class QedLayoutBuilder implements LayoutBuilder {
    private final HostSpace space;
    private final long c;
    private final long tableSize;
    private final long tableBytes;
    private final long cov;
    private final long headerSize;
    private final long virtualSize;
    private final long features;
    private final byte[] backingName;
    private final int pageBytes;
    private final int perPage;
    private final long pagesPerTable;

    private long l1Offset = -1;
    private final long[] l1Page;
    private long l1PagesWritten;

    private long l2Index = -1;
    private long l2Offset;
    private final long[] l2Page;
    private long l2PagesWritten;

    private long lastGuest = -1;
    private long maxEnd;
    private boolean finished;

    private QedLayoutBuilder(HostSpace space, long clusterSize, long tableSize, long virtualSize, String backingFile,
                             String backingFormat) {
        this.space = space;
        this.c = clusterSize;
        this.tableSize = tableSize;
        this.tableBytes = clusterSize * tableSize;
        this.cov = tableBytes / 8 * clusterSize;
        this.virtualSize = virtualSize;
        this.backingName = backingFile == null ? new byte[0] : backingFile.getBytes(StandardCharsets.UTF_8);
        long f = 0;
        if (backingFile != null) {
            f |= QedHeader.F_BACKING_FILE;
            if ("raw".equals(backingFormat)) {
                f |= QedHeader.F_BACKING_FORMAT_NO_PROBE;
            }
        }
        this.features = f;
        this.headerSize = Math.max(1, (QedHeader.BYTES + backingName.length + clusterSize - 1) / clusterSize);
        this.pageBytes = TablePage.pageBytes(tableBytes);
        this.perPage = pageBytes / 8;
        this.pagesPerTable = tableBytes / pageBytes;
        this.l1Page = new long[perPage];
        this.l2Page = new long[perPage];
        this.maxEnd = headerZone();
    }

    /**
     * Validates the options (qemu-img create -f qed's: cluster_size,
     * table_size, backing_file, backing_fmt) before anything is allocated.
     */
    static QedLayoutBuilder create(CreateSpec spec, TargetDefaults defaults, HostSpace space)
            throws InvalidRequestException {
        FormatOptions o = new FormatOptions(QedFormat.NAME, spec.options());
        // qemu silently rounds the size up to a sector
        if (spec.virtualSize() < 0 || spec.virtualSize() > Long.MAX_VALUE - 511) {
            throw new InvalidRequestException("invalid QED image size " + spec.virtualSize());
        }
        long size = spec.virtualSize() + 511 & ~511L;
        long tableSize = o.size("table_size", defaultTableSize(defaults, size));
        long clusterSize = o.size("cluster_size", defaultClusterSize(defaults, size, tableSize));
        String optBacking = o.string("backing_file", null);
        String optFormat = o.string("backing_fmt", null);
        o.rejectUnknown();
        String backing = spec.backingFile() != null ? spec.backingFile() : optBacking;
        String backingFormat = spec.backingFormat() != null ? spec.backingFormat() : optFormat;

        if (!QedHeader.isClusterSizeValid(clusterSize)) {
            throw new InvalidRequestException("QED cluster size must be within range [4096, 67108864] and a power "
                    + "of 2, not " + clusterSize);
        }
        if (!QedHeader.isTableSizeValid(tableSize)) {
            throw new InvalidRequestException("QED table size must be within range [1, 16] and a power of 2, not "
                    + tableSize);
        }
        if (tableSize == 1) {
            // qemu 7.2's qed_check_table_offset refuses every table offset when table_size is 1
            throw new InvalidRequestException("QED table_size=1 images cannot be opened by qemu (it rejects every "
                    + "table offset); use table_size 2, 4, 8 or 16");
        }
        if (!QedHeader.isImageSizeValid(size, clusterSize, tableSize)) {
            throw new InvalidRequestException("QED image size " + size + " exceeds the maximum of "
                    + QedHeader.maxImageSize(clusterSize, tableSize) + " bytes for cluster_size=" + clusterSize
                    + " and table_size=" + tableSize);
        }
        if (backing != null) {
            int len = backing.getBytes(StandardCharsets.UTF_8).length;
            if (len == 0 || len > QedHeader.MAX_BACKING_NAME) {
                throw new InvalidRequestException("QED backing file name must be 1 to " + QedHeader.MAX_BACKING_NAME
                        + " bytes long");
            }
        } else if (backingFormat != null) {
            throw new InvalidRequestException("backing_fmt given without a backing file");
        }
        return new QedLayoutBuilder(space, clusterSize, tableSize, size, backing, backingFormat);
    }

    /** A QED source's table size when it is valid and still fits this disk, else qemu's default. */
    private static long defaultTableSize(TargetDefaults defaults, long size) {
        String t = defaults.sourceOption("table_size");
        if (t != null) {
            long ts = Long.parseLong(t);
            if (QedHeader.isTableSizeValid(ts) && ts > 1
                    && QedHeader.isImageSizeValid(size, defaultClusterSize(defaults, size, ts), ts)) {
                return ts;
            }
        }
        return QedHeader.DEFAULT_TABLE_SIZE;
    }

    /** The source's cluster size when QED can use it for this disk, else qemu's default. */
    private static long defaultClusterSize(TargetDefaults defaults, long size, long tableSize) {
        long hint = defaults.clusterSize();
        if (QedHeader.isClusterSizeValid(hint) && QedHeader.isTableSizeValid(tableSize)
                && QedHeader.isImageSizeValid(size, hint, tableSize)) {
            return hint;
        }
        return QedHeader.DEFAULT_CLUSTER_SIZE;
    }

    @Override
    public long clusterSize() {
        return c;
    }

    /** Bytes of one L1 or L2 table. */
    long tableBytes() {
        return tableBytes;
    }

    /** Guest bytes one L2 table maps. */
    long l2Coverage() {
        return cov;
    }

    @Override
    public long headerZone() {
        return headerSize * c;
    }

    @Override
    public boolean canKeepDataAt(long hostOffset) {
        return hostOffset >= headerZone() && hostOffset % c == 0 && hostOffset <= Long.MAX_VALUE - c;
    }

    @Override
    public void addData(long guestOffset, long hostOffset) throws IOException {
        if (!canKeepDataAt(hostOffset)) {
            throw new InvalidRequestException(String.format("QED cannot keep a data cluster at host offset 0x%x "
                    + "(needs %d-byte alignment past the %d-byte header zone)", hostOffset, c, headerZone()));
        }
        entry(guestOffset, hostOffset);
        maxEnd = Math.max(maxEnd, hostOffset + c);
    }

    /** QED has zero clusters (entry 1): the cluster reads as zeros even over a backing file. */
    @Override
    public void addZero(long guestOffset) throws IOException {
        entry(guestOffset, QedImage.ZERO_CLUSTER);
    }

    @Override
    public boolean supportsZeroClusters() {
        return true;
    }

    private void entry(long guestOffset, long value) throws IOException {
        if (finished) {
            throw new IllegalStateException("QED layout already finished");
        }
        if (guestOffset < 0 || guestOffset % c != 0 || guestOffset >= virtualSize || guestOffset <= lastGuest) {
            throw new InvalidRequestException(String.format("guest cluster 0x%x is not a new cluster-aligned offset "
                    + "inside the disk, in increasing order", guestOffset));
        }
        lastGuest = guestOffset;
        ensureL1();
        long index = guestOffset / cov;
        if (index != l2Index) {
            finishL2();
            startL2(index);
        }
        long slot = guestOffset % cov / c;
        while (l2PagesWritten < slot / perPage) {
            writeL2Page();
        }
        l2Page[(int) (slot % perPage)] = value;
    }

    private void ensureL1() throws IOException {
        if (l1Offset < 0) {
            l1Offset = allocateTable();
        }
    }

    private long allocateTable() throws IOException {
        long at = space.allocate(tableBytes, c);
        maxEnd = Math.max(maxEnd, Math.addExact(at, tableBytes));
        return at;
    }

    private void startL2(long index) throws IOException {
        l2Index = index;
        l2Offset = allocateTable();
        l2PagesWritten = 0;
        while (l1PagesWritten < index / perPage) {
            writeL1Page();
        }
        l1Page[(int) (index % perPage)] = l2Offset;
    }

    private void finishL2() throws IOException {
        if (l2Index < 0) {
            return;
        }
        while (l2PagesWritten < pagesPerTable) {
            writeL2Page();
        }
        l2Index = -1;
    }

    private void writeL2Page() throws IOException {
        writePage(l2Offset + l2PagesWritten * pageBytes, l2Page);
        l2PagesWritten++;
    }

    private void writeL1Page() throws IOException {
        writePage(l1Offset + l1PagesWritten * pageBytes, l1Page);
        l1PagesWritten++;
    }

    /** Writes a page (a fresh buffer each time: a recording HostSpace may keep it) and clears it. */
    private void writePage(long offset, long[] entries) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(pageBytes).order(ByteOrder.LITTLE_ENDIAN);
        b.asLongBuffer().put(entries);
        space.write(offset, b);
        Arrays.fill(entries, 0);
    }

    @Override
    public CommitRecord finish() throws IOException {
        if (finished) {
            throw new IllegalStateException("QED layout already finished");
        }
        ensureL1();
        finishL2();
        while (l1PagesWritten < pagesPerTable) {
            writeL1Page();
        }
        finished = true;
        boolean backing = (features & QedHeader.F_BACKING_FILE) != 0;
        QedHeader h = new QedHeader(c, tableSize, headerSize, features, 0, 0, l1Offset, virtualSize,
                backing ? QedHeader.BYTES : 0, backingName.length);
        ByteBuffer out = ByteBuffer.allocate(QedHeader.BYTES + backingName.length);
        out.put(h.encode()).put(backingName);
        return CommitRecord.headerSector(out.array(), space);
    }

    /** The end of the last referenced cluster: qemu ignores a partial cluster at the end of the file. */
    @Override
    public long requiredFileLength() {
        if (!finished) {
            throw new IllegalStateException("QED layout not finished yet");
        }
        return maxEnd;
    }
}
