package io.diskmorph.format.vhdx;

import io.diskmorph.image.CreateSpec;
import io.diskmorph.image.DiskImage;
import io.diskmorph.image.HostSpace;
import io.diskmorph.image.ImageFormat;
import io.diskmorph.image.LayoutBuilder;
import io.diskmorph.image.LayoutTarget;
import io.diskmorph.image.OpenContext;
import io.diskmorph.image.UnsupportedFeatureException;
import io.diskmorph.storage.Storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.List;

/**
 * Hyper-V's VHDX: dynamic, fixed and differencing images (read), 512 and
 * 4096-byte logical sectors, block sizes 1-256 MiB; create (qemu-img's
 * options and layout) and guest writes for dynamic and fixed images. A VHDX
 * that is not differencing is an in-place source ({@link
 * VhdxImage#notInPlaceSource()}) and an in-place target ({@link
 * VhdxLayoutBuilder}).
 */
public final class VhdxFormat implements ImageFormat, LayoutTarget {
    public static final String NAME = "vhdx";

    @Override
    public String name() {
        return NAME;
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

    /** qemu-img's layout ({@link VhdxCreator}), then opened for writing. */
    @Override
    public DiskImage create(Storage storage, CreateSpec spec, OpenContext context) throws IOException {
        VhdxCreator.create(storage, VhdxCreator.Options.parse(spec));
        return open(storage, context.withReadOnly(false));
    }

    @Override
    public void checkCreateSpec(CreateSpec spec) throws IOException {
        VhdxCreator.Options.parse(spec);
    }

    /** qemu-img 7.2's VHDX options (its file protocol's nocow, extent_size_hint and preallocation are not). */
    @Override
    public List<OptionHelp> createOptions() {
        return List.of(
                new OptionHelp("subformat", "dynamic (default) or fixed (the payload preallocated)"),
                new OptionHelp("block_size", "Block size, 1 MiB to 256 MiB, a power of two (rounded up to whole "
                        + "MiBs; 0 or unset: 8 MiB up to 1 GiB, 16 MiB up to 100 GiB, 32 MiB up to 32 TiB, then 64 MiB)"),
                new OptionHelp("log_size", "Log size, at least 1 MiB (rounded up to whole MiBs; default 1 MiB)"),
                new OptionHelp("block_state_zero", "on (default): every block starts in the 'zero' state, as "
                        + "qemu-img makes them (for subformat=fixed too, leaving the preallocated blocks unused); "
                        + "off: dynamic blocks start 'not present', fixed ones 'fully present'"));
    }

    /** In place: a dynamic VHDX built around the data ({@link VhdxLayoutBuilder}). */
    @Override
    public LayoutBuilder layoutBuilder(CreateSpec spec, TargetDefaults defaults, HostSpace space) throws IOException {
        return VhdxLayoutBuilder.create(spec, defaults, space);
    }

    @Override
    public String notInPlace(String name) {
        return switch (name) {
            case "subformat" -> "in place, a VHDX is dynamic: its blocks stay where the data is";
            case "block_state_zero" -> "in place, each block's state follows the source (data, zero, unallocated)";
            default -> LayoutTarget.super.notInPlace(name);
        };
    }

    /** qemu's VHDX check looks at BAT entries only: space no entry names is free, not leaked. */
    @Override
    public boolean unreferencedSpaceIsLeak() {
        return false;
    }
}
