package io.diskmorph.testing;

import io.diskmorph.image.AbstractDiskImage;
import io.diskmorph.image.FormatRegistry;
import io.diskmorph.image.ImageFormat;
import io.diskmorph.image.ImageInfo;
import io.diskmorph.image.Mapping;
import io.diskmorph.image.OpenContext;
import io.diskmorph.storage.Storage;

import java.nio.ByteBuffer;

/**
 * A read-only image that answers from a table of 4 KiB pieces, each a data
 * answer at a host offset of the file it names (or of the image's own file,
 * when it names none), and asks only {@code holesFile} for holes: the
 * mapping of an image made of several files, without a driver.
 */
public final class ScriptedImage extends AbstractDiskImage {
    public static final int PIECE = 4096;

    private final Mapping.Data[] pieces;
    private final Storage holesFile;

    public ScriptedImage(Storage self, Storage holesFile, Mapping.Data... pieces) {
        super(self, OpenContext.readOnly(null));
        this.pieces = pieces;
        this.holesFile = holesFile;
    }

    @Override
    public ImageFormat format() {
        return FormatRegistry.plainFormat();
    }

    @Override
    public long virtualSize() {
        return (long) pieces.length * PIECE;
    }

    @Override
    public long clusterSize() {
        return 0;
    }

    @Override
    public Mapping mapping(long guestOffset, long maxLength) {
        Mapping.Data p = pieces[(int) (guestOffset / PIECE)];
        long in = guestOffset % PIECE;
        return new Mapping.Data(Math.min(maxLength, PIECE - in), p.hostOffset() + in, p.file());
    }

    @Override
    public boolean mapReportsHostHolesAsZero(Mapping.Data data) {
        return dataStorage(data) == holesFile;
    }

    @Override
    public void write(ByteBuffer src, long guestOffset) {
        throw new UnsupportedOperationException();
    }

    @Override
    public ImageInfo info() {
        throw new UnsupportedOperationException();
    }

    @Override
    public void flush() {
    }

    @Override
    protected void closeImage() {
    }
}
