package io.diskmorph.format.vmdk;

import io.diskmorph.image.CreateSpec;
import io.diskmorph.image.DiskImage;
import io.diskmorph.image.ImageFormat;
import io.diskmorph.image.OpenContext;
import io.diskmorph.image.UnsupportedFeatureException;
import io.diskmorph.storage.Storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.List;

/**
 * VMware's VMDK, read only for now: descriptor files and their extents
 * (flat, hosted sparse, streamOptimized, ESX sparse, seSparse, zero),
 * monolithic sparse files, snapshots through parentFileNameHint. Creating
 * images, guest writes and in-place conversion to VMDK are refused by name;
 * a single-file sparse VMDK is an in-place source ({@link
 * VmdkImage#notInPlaceSource()}).
 */
public final class VmdkFormat implements ImageFormat {
    public static final String NAME = "vmdk";

    private static final String[] VERSION_LINES = {"version=1", "version=2", "version=3"};

    @Override
    public String name() {
        return NAME;
    }

    @Override
    public boolean canWrite() {
        return false;
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

    /** The one line every write, create or in-place conversion to VMDK gets. */
    static UnsupportedFeatureException writingNotSupported(String file) {
        return new UnsupportedFeatureException((file != null ? file + ": " : "")
                + "VMDK writing is not supported yet: diskmorph reads VMDK images and converts single-file ones "
                + "in place to other formats, but does not create or change VMDK images (a copy from VMDK works: "
                + "'diskmorph convert -O qcow2 SRC DST')");
    }
}
