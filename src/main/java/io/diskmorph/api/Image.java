package io.diskmorph.api;

import io.diskmorph.image.ChainMap;
import io.diskmorph.image.DiskImage;

import java.nio.ByteBuffer;

/**
 * An open image: its details, its map, and the guest disk's bytes. Made by
 * {@link Diskmorph#open}; close it to release its file and lock. Not safe
 * for use by several threads at once.
 */
public final class Image implements AutoCloseable {
    private final DiskImage image;

    Image(DiskImage image) {
        this.image = image;
    }

    /**
     * The image's format.
     *
     * @return a format name ("qcow2", "vmdk", ...)
     */
    public String format() {
        return image.format().name();
    }

    /**
     * The guest disk's size.
     *
     * @return bytes
     */
    public long virtualSize() {
        return image.virtualSize();
    }

    /**
     * Whether guest writes are allowed.
     *
     * @return true when opened writable
     */
    public boolean isWritable() {
        return !image.isReadOnly();
    }

    /**
     * What {@code info} shows of the image.
     *
     * @return the details
     * @throws DiskmorphException when the metadata cannot be read
     */
    public ImageDetails details() throws DiskmorphException {
        return Failures.translating(() -> ImageDetails.of(image.info()));
    }

    /**
     * The map of the whole guest disk, through the backing chain.
     *
     * @return a cursor over the extents, from guest offset 0
     */
    public ExtentCursor extents() {
        return new ExtentCursor(new ChainMap(image, true));
    }

    /**
     * The map of a range of the guest disk.
     *
     * @param start guest offset where the range starts
     * @param end   guest offset where it ends (exclusive), at most {@link #virtualSize()}
     * @return a cursor over the extents of the range
     * @throws InvalidRequestException when the range is not inside the disk
     */
    public ExtentCursor extents(long start, long end) throws InvalidRequestException {
        checkRange(start, end - start);
        return new ExtentCursor(new ChainMap(image, true, start, end));
    }

    /**
     * Reads guest bytes.
     *
     * @param dst         where the bytes go: {@code dst.remaining()} of them
     * @param guestOffset the guest offset of the first byte
     * @throws DiskmorphException when the range is outside the disk or the image cannot be read
     */
    public void read(ByteBuffer dst, long guestOffset) throws DiskmorphException {
        checkRange(guestOffset, dst.remaining());
        Failures.translating(() -> {
            image.read(dst, guestOffset);
            return null;
        });
    }

    /**
     * Writes guest bytes (the image must be open writable). Durable after
     * {@link #flush()}.
     *
     * @param src         the bytes: {@code src.remaining()} of them
     * @param guestOffset the guest offset of the first byte
     * @throws DiskmorphException when the range is outside the disk, the image is read-only or writing fails
     */
    public void write(ByteBuffer src, long guestOffset) throws DiskmorphException {
        checkWritable();
        checkRange(guestOffset, src.remaining());
        Failures.translating(() -> {
            image.write(src, guestOffset);
            return null;
        });
    }

    /**
     * Makes a range of the guest disk read as zeros, deallocating it where
     * the format can.
     *
     * @param guestOffset the guest offset of the range
     * @param length      bytes in the range
     * @throws DiskmorphException when the range is outside the disk, the image is read-only or writing fails
     */
    public void writeZeroes(long guestOffset, long length) throws DiskmorphException {
        checkWritable();
        checkRange(guestOffset, length);
        Failures.translating(() -> {
            image.writeZeroes(guestOffset, length, true);
            return null;
        });
    }

    /**
     * Makes every write so far durable.
     *
     * @throws DiskmorphException when syncing fails
     */
    public void flush() throws DiskmorphException {
        Failures.translating(() -> {
            image.flush();
            return null;
        });
    }

    /**
     * Flushes a writable image and releases its files and locks.
     *
     * @throws DiskmorphException when the final flush fails
     */
    @Override
    public void close() throws DiskmorphException {
        Failures.translating(() -> {
            image.close();
            return null;
        });
    }

    DiskImage internal() {
        return image;
    }

    private void checkWritable() throws InvalidRequestException {
        if (image.isReadOnly()) {
            throw new InvalidRequestException(image.storage().name() + ": opened read-only", null);
        }
    }

    private void checkRange(long guestOffset, long length) throws InvalidRequestException {
        if (guestOffset < 0 || length < 0 || guestOffset > image.virtualSize() - length) {
            throw new InvalidRequestException(String.format("%s: guest range %d + %d is outside the disk of %d bytes",
                    image.storage().name(), guestOffset, length, image.virtualSize()), null);
        }
    }
}
