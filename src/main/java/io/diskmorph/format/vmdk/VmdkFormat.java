package io.diskmorph.format.vmdk;

import io.diskmorph.image.CreateSpec;
import io.diskmorph.image.FlatDescriptorFormat;
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
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.List;

/**
 * VMware's VMDK: descriptor files and their extents (flat, hosted sparse,
 * streamOptimized, ESX sparse, seSparse, zero), monolithic sparse files,
 * snapshots through parentFileNameHint. Guest writes to flat and hosted
 * sparse extents ({@link VmdkImage#write}); create with qemu-img's options
 * and layout ({@link VmdkCreator}), streamOptimized written front to back
 * ({@link StreamOptimizedImage}). An in-place target as monolithicSparse
 * ({@link VmdkLayoutBuilder}); a single-file sparse VMDK is an in-place
 * source ({@link VmdkImage#notInPlaceSource()}).
 */
public final class VmdkFormat implements ImageFormat, LayoutTarget, FlatDescriptorFormat {
    public static final String NAME = "vmdk";

    private static final String[] VERSION_LINES = {"version=1", "version=2", "version=3"};

    @Override
    public String name() {
        return NAME;
    }

    @Override
    public boolean canWrite() {
        return true;
    }

    /**
     * qemu's vmdk_probe: "KDMV" (hosted sparse) or "COWD" (ESX sparse) at 0,
     * or a descriptor: comment lines and lines of spaces (then an optional CR)
     * may come before a line "version=1", "version=2" or "version=3" (LF or
     * CRLF); the first other line, or an empty line, decides "not vmdk".
     * Only qemu's 512-byte probe buffer counts.
     */
    @Override
    public int probe(ByteBuffer head, long fileSize) {
        if (head.remaining() >= 4) {
            int magic = head.order(ByteOrder.BIG_ENDIAN).getInt(head.position());
            if (magic == SparseHeader.MAGIC_KDMV || magic == SparseHeader.MAGIC_COWD) {
                return 100;
            }
        }
        int start = head.position();
        int end = Math.min(head.limit(), start + 512);
        int p = start;
        while (p < end) {
            byte c = head.get(p);
            if (c == '#') {
                while (p < end && head.get(p) != '\n') {
                    p++;
                }
                p++;
                continue;
            }
            if (c == ' ') {
                while (p < end && head.get(p) == ' ') {
                    p++;
                }
                if (p < end && head.get(p) == '\r') {
                    p++;
                }
                if (p == end || head.get(p) != '\n') {
                    return 0;
                }
                p++;
                continue;
            }
            for (String v : VERSION_LINES) {
                if (startsWith(head, p, end, v + "\n") || startsWith(head, p, end, v + "\r\n")) {
                    return 100;
                }
            }
            return 0;
        }
        return 0;
    }

    private static boolean startsWith(ByteBuffer h, int at, int end, String s) {
        byte[] b = s.getBytes(StandardCharsets.US_ASCII);
        if (at + b.length > end) {
            return false;
        }
        for (int i = 0; i < b.length; i++) {
            if (h.get(at + i) != b[i]) {
                return false;
            }
        }
        return true;
    }

    @Override
    public DiskImage open(Storage storage, OpenContext context) throws IOException {
        return VmdkImage.open(this, storage, context);
    }

    @Override
    public DiskImage create(Storage storage, CreateSpec spec, OpenContext context) throws IOException {
        return VmdkCreator.create(this, storage, spec, context);
    }

    /** In place: a monolithicSparse file built around the data (VmdkLayoutBuilder). */
    @Override
    public LayoutBuilder layoutBuilder(CreateSpec spec, TargetDefaults defaults, HostSpace space) throws IOException {
        return VmdkLayoutBuilder.create(spec, defaults, space);
    }

    /** In place from raw: monolithicFlat, the raw file renamed to the extent (FlatPairSwitch). */
    @Override
    public FlatDescriptor flatDescriptor(String imageName, long virtualSize, Map<String, String> options)
            throws IOException {
        return VmdkCreator.flatDescriptor(imageName, virtualSize, options);
    }

    @Override
    public String notInPlace(String name) {
        if (name.equals("backing_file") || name.equals("backing_fmt")) {
            return LayoutTarget.super.notInPlace(name);
        }
        return null; // subformat: monolithicSparse only, said by the builder when another is asked for
    }

    /** qemu's VMDK check looks at grains only: space no table names is free, not leaked. */
    @Override
    public boolean unreferencedSpaceIsLeak() {
        return false;
    }

    @Override
    public void checkCreateSpec(CreateSpec spec) throws IOException {
        VmdkCreator.options(spec);
    }

    /** qemu-img 7.2's VMDK options (its file-protocol ones, preallocation, nocow and extent_size_hint, aside). */
    @Override
    public List<OptionHelp> createOptions() {
        return List.of(
                new OptionHelp("adapter_type", "Virtual adapter type, can be one of ide (default), lsilogic, "
                        + "buslogic or legacyESX"),
                new OptionHelp("backing_file", "File name of a base image"),
                new OptionHelp("backing_fmt", "Must be 'vmdk' if present"),
                new OptionHelp("compat6", "VMDK version 6 image (on/off, default off)"),
                new OptionHelp("hwversion", "VMDK hardware version"),
                new OptionHelp("subformat", "VMDK flat extent format, can be one of {monolithicSparse (default) | "
                        + "monolithicFlat | twoGbMaxExtentSparse | twoGbMaxExtentFlat | streamOptimized}"),
                new OptionHelp("toolsversion", "VMware guest tools version"),
                new OptionHelp("zeroed_grain", "Enable efficient zero writes using the zeroed-grain GTE feature "
                        + "(on/off, default off)"));
    }
}
