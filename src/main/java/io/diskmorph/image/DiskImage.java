package io.diskmorph.image;

import io.diskmorph.storage.Storage;

import java.io.Closeable;
import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * An open image: one layer of a chain, with its backing image (if any)
 * opened lazily behind it.
 *
 * <p>Contract for drivers:
 * <ul>
 * <li>{@link #mapping} answers for this layer only, never reads guest data,
 *     and returns an extent of 1..maxLength bytes that does not cross the
 *     virtual size. Adjacent calls may return pieces of what is one run;
 *     callers merge.</li>
 * <li>{@link #read} returns what the guest sees (falling through to the
 *     backing chain, zeros past the backing image's end);
 *     {@link AbstractDiskImage} implements it from {@link #mapping}.</li>
 * <li>{@link #write} and {@link #writeZeroes} are guest writes; metadata may be
 *     cached until {@link #flush}, which makes everything durable in an order
 *     that never leaves metadata pointing at unwritten data, and never leaves
 *     a cluster in use with a refcount too low.</li>
 * <li>{@link #close} flushes (when writable), closes the backing chain and the storage.</li>
 * </ul>
 */
public interface DiskImage extends Closeable {

    ImageFormat format();

    /** The image file itself. */
    Storage storage();

    /**
     * Where {@link Mapping.Data} host offsets point when the answer names no
     * file of its own: the image file, or an external data file.
     */
    default Storage dataStorage() {
        return storage();
    }

    /**
     * The file that holds one data answer: the file it names (an image made of
     * several files, like a VMDK with extent files, names one per answer), else
     * {@link #dataStorage()}.
     */
    default Storage dataStorage(Mapping.Data data) {
        return data.file() != null ? data.file() : dataStorage();
    }

    /**
     * Why this image cannot be the source of an in-place conversion, which
     * rewrites the image's own file and no other, or null when it can be:
     * a driver whose images keep guest data in files of their own (a VMDK
     * descriptor and its extent files) says so here, as one line. The
     * converter also refuses any data answer that names another file
     * ({@link Mapping.Data#file()}), whatever the driver says. Throws what
     * reading the image would throw when its content is not defined (a VMDK
     * snapshot whose parent changed since), so that it is refused before
     * the target would read it differently.
     */
    default String notInPlaceSource() throws IOException {
        return null;
    }

    long virtualSize();

    /** Cluster (or block, grain) size, 0 when the format has none. */
    long clusterSize();

    boolean isReadOnly();

    /** Describes this layer's guest range starting at {@code guestOffset}. */
    Mapping mapping(long guestOffset, long maxLength) throws IOException;

    /**
     * Where QEMU's block status for this layer ends, at the latest, an
     * answer that starts at {@code guestOffset}: its qcow2 and QED drivers
     * answer from one L2 table at a time. Only the end of an answer shows
     * outside ({@link BlockStatus}: BDRV_BLOCK_EOF, which qemu-img compare -s
     * compares); formats without tables answer up to the virtual size.
     */
    default long blockStatusLimit(long guestOffset) {
        return virtualSize();
    }

    /** Reads guest data at {@code guestOffset} into {@code dst} (its remaining bytes). */
    void read(ByteBuffer dst, long guestOffset) throws IOException;

    /** Writes guest data; allocates as needed. */
    void write(ByteBuffer src, long guestOffset) throws IOException;

    /**
     * Makes a guest range read as zeros, using zero markers where the format
     * has them (and deallocating when {@code mayUnmap}); otherwise writes zeros.
     */
    void writeZeroes(long guestOffset, long length, boolean mayUnmap) throws IOException;

    /** Stored backing file name, or null. */
    String backingFileName();

    /** Stored backing format, or null. */
    String backingFormat();

    /** The backing image, opened read-only on first use; null without one (or with --no-backing). */
    DiskImage backing() throws IOException;

    /**
     * Throws when this layer refuses to show its backing image's data, as
     * {@link #read} would where it reads through (a VMDK snapshot whose
     * parent changed since: qemu's vmdk_is_cid_valid). Readers that take
     * data from {@link #backing()}'s mapping directly instead of through
     * {@code read} (copy conversion's mapped source) ask this first.
     */
    default void checkBackingReadable() throws IOException {
    }

    ImageInfo info() throws IOException;

    /**
     * The -o options (names as qemu-img create spells them) that would lay
     * out an image of this format like this one: what a same-format in-place
     * conversion keeps unless the user changes it. Formats without options
     * return an empty map.
     */
    default java.util.Map<String, String> creationOptions() throws IOException {
        return java.util.Map.of();
    }

    /**
     * QEMU quirk kept for map compatibility: when true, data extents whose
     * host range is a hole in the data file are reported as reading zeros
     * (qcow2 with metadata preallocation does this, BDRV_BLOCK_RECURSE).
     */
    default boolean mapReportsHostHolesAsZero() throws IOException {
        return false;
    }

    /**
     * {@link #mapReportsHostHolesAsZero()} for one data answer: formats whose
     * files differ in this (a VMDK's flat extents are asked for holes, QEMU's
     * BDRV_BLOCK_RECURSE, its sparse extents are not) answer per file.
     */
    default boolean mapReportsHostHolesAsZero(Mapping.Data data) throws IOException {
        return mapReportsHostHolesAsZero();
    }

    /** Consistency check with optional repair: {@link #check(RepairMode, PhaseProgress)} without a listener. */
    default CheckReport check(RepairMode repair) throws IOException {
        return check(repair, PhaseProgress.NONE);
    }

    /**
     * Consistency check with optional repair, telling {@code progress} how
     * far it got, per phase ("tables": guest bytes whose mapping entries
     * were judged, of the address space the tables cover; "refcounts": host
     * bytes whose counts were compared; "repair"). Drivers with checks
     * override this; a format without them (this default) announces one
     * phase "check" and refuses.
     */
    default CheckReport check(RepairMode repair, PhaseProgress progress) throws IOException {
        progress.update("check", 0, virtualSize());
        throw new UnsupportedFeatureException("format " + format().name() + " does not support checks");
    }

    /** Durably writes cached metadata (data first, then refcounts, then tables). */
    void flush() throws IOException;

    @Override
    void close() throws IOException;
}
