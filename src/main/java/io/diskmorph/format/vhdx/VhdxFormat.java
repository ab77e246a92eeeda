package io.diskmorph.format.vhdx;

import io.diskmorph.image.CreateSpec;
import io.diskmorph.image.DiskImage;
import io.diskmorph.image.ImageFormat;
import io.diskmorph.image.OpenContext;
import io.diskmorph.image.UnsupportedFeatureException;
import io.diskmorph.storage.Storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.List;

/**
 * Hyper-V's VHDX, read only for now: dynamic, fixed and differencing
 * images, 512 and 4096-byte logical sectors, block sizes 1-256 MiB.
 * Creating images, guest writes and in-place conversion to VHDX are refused
 * by name; a VHDX that is not differencing is an in-place source ({@link
 * VhdxImage#notInPlaceSource()}).
 */
public final class VhdxFormat implements ImageFormat {
    public static final String NAME = "vhdx";

    @Override
    public String name() {
        return NAME;
    }

    @Override
    public boolean canWrite() {
        return false;
    }

    /** qemu's vhdx_probe: the file identifier's signature "vhdxfile" at offset 0. */
    @Override
    public int probe(ByteBuffer head, long fileSize) {
        byte[] sig = {'v', 'h', 'd', 'x', 'f', 'i', 'l', 'e'};
        if (head.remaining() < sig.length) {
            return 0;
        }
        for (int i = 0; i < sig.length; i++) {
            if (head.get(head.position() + i) != sig[i]) {
                return 0;
            }
        }
        return 100;
    }

    @Override
    public DiskImage open(Storage storage, OpenContext context) throws IOException {
        return VhdxImage.open(this, storage, context);
    }

    @Override
    public DiskImage create(Storage storage, CreateSpec spec, OpenContext context) throws UnsupportedFeatureException {
        throw writingNotSupported(null);
    }

    @Override
    public UnsupportedFeatureException writingNotSupported() {
        return writingNotSupported(null);
    }

    /** No options: nothing can be created yet. */
    @Override
    public List<OptionHelp> createOptions() {
        return List.of();
    }

    /** The one line every write, create or in-place conversion to VHDX gets. */
    static UnsupportedFeatureException writingNotSupported(String file) {
        return new UnsupportedFeatureException((file != null ? file + ": " : "")
                + "VHDX writing is not supported yet: diskmorph reads VHDX images and converts them in place to "
                + "other formats, but does not create or change VHDX images (a copy from VHDX works: "
                + "'diskmorph convert -O qcow2 SRC DST')");
    }
}
