package io.diskmorph.format.vhdx;

import io.diskmorph.image.CreateSpec;
import io.diskmorph.image.FormatOptions;
import io.diskmorph.image.InvalidRequestException;
import io.diskmorph.image.UnsupportedFeatureException;
import io.diskmorph.storage.Storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;

/**
 * New VHDX files, laid out as qemu-img 7.2 lays them out (measured, see
 * docs/FORMATS.md): the 1 MiB header section (file identifier, two headers
 * with sequence numbers N and N+1, two equal region tables), the log at
 * 1 MiB, the BAT right after it (whole MiBs), the 1 MiB metadata region
 * after the BAT (five items at 64 KiB into it), and payload blocks from
 * 5 MiB past the metadata on. qemu's options and their rounding: block
 * and log sizes rounded up to whole MiBs, a block size over 256 MiB taken
 * as 256 MiB, a block size that is no power of two refused; block_state_zero
 * (on by default) marks every block "zero", which for subformat=fixed
 * leaves the preallocated blocks unused, as qemu does.
 */
final class VhdxCreator {
    static final long MIB = VhdxLayout.MIB;
    /** qemu's room between the metadata region and the first payload block. */
    private static final long PAYLOAD_GAP = 5 * MIB;
    private static final String CREATOR = "diskmorph";

    /** The options of one create, judged. */
    record Options(long virtualSize, boolean fixed, long blockSize, long logSize, boolean zeroBlocks) {
        static Options parse(CreateSpec spec) throws IOException {
            if (spec.backingFile() != null) {
                throw new UnsupportedFeatureException("creating a differencing VHDX (a backing file) is not "
                        + "supported (qemu-img cannot either)");
            }
            FormatOptions o = new FormatOptions(VhdxFormat.NAME, spec.options());
            String sub = o.string("subformat", "dynamic");
            if (!sub.equals("dynamic") && !sub.equals("fixed")) {
                throw new InvalidRequestException("Parameter 'subformat' does not accept value '" + sub + "' "
                        + "(dynamic or fixed)");
            }
            long block = o.size("block_size", 0);
            long log = o.size("log_size", MIB);
            boolean zero = o.bool("block_state_zero", true);
            o.rejectUnknown();
            long size = Math.addExact(spec.virtualSize(), 511) & ~511L;
            if (size > VhdxLayout.MAX_VIRTUAL_SIZE) {
                throw new InvalidRequestException("Image size too large; max of 64TB");
            }
            if (block == 0) {
                block = size > (32L << 40) ? 64 * MIB : size > (100L << 30) ? 32 * MIB
                        : size > (1L << 30) ? 16 * MIB : 8 * MIB;
            }
            block = Math.min(roundUpMib(block), VhdxLayout.MAX_BLOCK_SIZE);
            if (Long.bitCount(block) != 1) {
                throw new InvalidRequestException("Block size must be a power of two (it is " + block
                        + " bytes after rounding up to whole MiBs, as qemu-img does)");
            }
            log = Math.max(MIB, roundUpMib(log));
            if (log > 0xFFFFFFFFL - MIB + 1) {
                throw new InvalidRequestException("Log size must be less than 4 GiB");
            }
            return new Options(size, sub.equals("fixed"), block, log, zero);
        }

        private static long roundUpMib(long v) {
            return Math.addExact(v, MIB - 1) & -MIB;
        }

        long dataBlocks() {
            return (virtualSize + blockSize - 1) / blockSize;
        }

        long chunkRatio() {
            return VhdxLayout.SECTORS_PER_BITMAP * 512 / blockSize;
        }

        long batEntries() {
            long n = dataBlocks();
            return n == 0 ? 0 : n + (n - 1) / chunkRatio();
        }

        long logOffset() {
            return VhdxLayout.HEADER_SECTION;
        }

        long batOffset() {
            return logOffset() + logSize;
        }

        /**
         * Whole MiBs for the BAT entries. An empty disk gets what qemu 7.2
         * reserves and then requires when it opens one: its 32-bit count
         * 0 + (0 - 1) / chunk ratio, a 64 MiB BAT (sparse zeros).
         */
        long batLength() {
            long entries = dataBlocks() == 0 ? 0xFFFFFFFFL / chunkRatio() : batEntries();
            return Math.max(MIB, roundUpMib(8 * entries));
        }

        long metadataOffset() {
            return batOffset() + batLength();
        }

        long dataOffset() {
            return batOffset() + batLength() + PAYLOAD_GAP;
        }

        long fileLength() {
            return fixed ? dataOffset() + virtualSize : dataOffset();
        }
    }

    private VhdxCreator() {
    }

    /**
     * Writes a new image on the (empty) storage: everything but the headers,
     * a sync, then the two headers and a sync, so the file is a VHDX only
     * once all it names is durable.
     */
    static void create(Storage storage, Options o) throws IOException {
        storage.truncate(0);
        storage.truncate(o.fileLength());
        storage.write(fileIdentifier(), 0);
        ByteBuffer regions = regionTable(o.batOffset(), o.batLength(), o.metadataOffset());
        storage.write(regions.duplicate(), VhdxLayout.REGION_TABLE1_OFFSET);
        storage.write(regions.duplicate(), VhdxLayout.REGION_TABLE2_OFFSET);
        storage.write(metadata(o, Guid.random()), o.metadataOffset());
        writeBat(storage, o);
        storage.sync();
        long sequence = Guid.random().hashCode() & 0x7fffffffL; // qemu starts from a random number too
        Guid fileWrite = Guid.random();
        Guid dataWrite = Guid.random();
        storage.write(header(o, o.logOffset(), sequence, fileWrite, dataWrite), VhdxLayout.HEADER1_OFFSET);
        storage.write(header(o, o.logOffset(), sequence + 1, fileWrite, dataWrite), VhdxLayout.HEADER2_OFFSET);
        storage.sync();
    }

    static ByteBuffer fileIdentifier() {
        ByteBuffer b = ByteBuffer.allocate(520);
        b.put("vhdxfile".getBytes(StandardCharsets.US_ASCII));
        b.put(CREATOR.getBytes(StandardCharsets.UTF_16LE));
        return b.clear();
    }

    static ByteBuffer header(Options o, long logOffset, long sequence, Guid fileWrite, Guid dataWrite) {
        ByteBuffer h = ByteBuffer.allocate(VhdxLayout.HEADER_BYTES).order(ByteOrder.LITTLE_ENDIAN);
        h.put(0, "head".getBytes(StandardCharsets.US_ASCII));
        h.putLong(8, sequence);
        h.put(16, fileWrite.bytes()).put(32, dataWrite.bytes()); // log GUID (48) zero: no log entries
        h.putShort(64, (short) 0); // log version
        h.putShort(66, (short) 1); // version
        h.putInt(68, (int) o.logSize);
        h.putLong(72, logOffset);
        h.putInt(4, VhdxLayout.checksum(h));
        return h.clear();
    }

    static ByteBuffer regionTable(long batOffset, long batLength, long metadataOffset) {
        ByteBuffer r = ByteBuffer.allocate(VhdxLayout.REGION_TABLE_BYTES).order(ByteOrder.LITTLE_ENDIAN);
        r.put(0, "regi".getBytes(StandardCharsets.US_ASCII));
        r.putInt(8, 2);
        r.put(16, VhdxLayout.BAT_REGION.bytes()).putLong(32, batOffset).putInt(40, (int) batLength);
        r.put(48, VhdxLayout.METADATA_REGION.bytes()).putLong(64, metadataOffset).putInt(72, MIB_INT);
        // the required bits stay clear, as qemu-img writes them (every reader knows both regions)
        r.putInt(4, VhdxLayout.checksum(r));
        return r.clear();
    }

    private static final int MIB_INT = (int) MIB;

    static ByteBuffer metadata(Options o, Guid page83) {
        ByteBuffer m = ByteBuffer.allocate(VhdxLayout.METADATA_TABLE_BYTES + 64).order(ByteOrder.LITTLE_ENDIAN);
        m.put(0, "metadata".getBytes(StandardCharsets.US_ASCII));
        m.putShort(10, (short) 5);
        int items = VhdxLayout.METADATA_TABLE_BYTES;
        item(m, 0, VhdxLayout.FILE_PARAMETERS, items, 8, 0x4);
        item(m, 1, VhdxLayout.VIRTUAL_DISK_SIZE, items + 8, 8, 0x6);
        item(m, 2, VhdxLayout.PAGE_83, items + 16, 16, 0x6);
        item(m, 3, VhdxLayout.LOGICAL_SECTOR_SIZE, items + 32, 4, 0x6);
        item(m, 4, VhdxLayout.PHYSICAL_SECTOR_SIZE, items + 36, 4, 0x6);
        m.putInt(items, (int) o.blockSize).putInt(items + 4, o.fixed ? 1 : 0); // fixed: leave blocks allocated
        m.putLong(items + 8, o.virtualSize);
        m.put(items + 16, page83.bytes());
        m.putInt(items + 32, 512).putInt(items + 36, 512);
        return m.clear();
    }

    /** Metadata table entry {@code i}: the item's GUID, offset, length and flags (2: virtual disk, 4: required). */
    private static void item(ByteBuffer m, int i, Guid g, int offset, int length, int flags) {
        int at = 32 + 32 * i;
        m.put(at, g.bytes()).putInt(at + 16, offset).putInt(at + 20, length).putInt(at + 24, flags);
    }

    /**
     * The BAT: every payload entry "zero" (block_state_zero), or fully
     * present at its place in the preallocated data (fixed), or left not
     * present (zeros); sector bitmap entries stay zero. Written a MiB at a
     * time, so a 64 TiB disk needs no more memory than a small one.
     */
    private static void writeBat(Storage storage, Options o) throws IOException {
        if (!o.zeroBlocks && !o.fixed) {
            return; // the file's zeros are "not present"
        }
        long entries = o.batEntries();
        long ratio = o.chunkRatio();
        int perChunk = (int) (MIB / 8);
        ByteBuffer page = ByteBuffer.allocate((int) MIB).order(ByteOrder.LITTLE_ENDIAN);
        for (long first = 0; first < entries; first += perChunk) {
            page.clear();
            int n = (int) Math.min(perChunk, entries - first);
            for (int i = 0; i < n; i++) {
                long index = first + i;
                long entry = 0;
                if (index % (ratio + 1) != ratio) { // not a sector bitmap entry
                    long block = index - index / (ratio + 1);
                    entry = o.zeroBlocks ? VhdxImage.ZERO
                            : (Math.addExact(o.dataOffset() + block * o.blockSize, MIB - 1) & -MIB)
                            | VhdxImage.FULLY_PRESENT;
                }
                page.putLong(8 * i, entry);
            }
            storage.write(page.limit(8 * n), o.batOffset() + 8 * first);
        }
    }
}
