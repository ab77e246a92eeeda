package io.diskmorph.format.unsupported;

import io.diskmorph.image.ImageFormat;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.List;

/**
 * The formats qemu-img 7.2 recognises by probing that diskmorph cannot read
 * yet, each with qemu's probe rule (block/*.c, the {@code *_probe}
 * functions): qemu looks at the first 512 bytes of the file, zero padded
 * when the file is shorter, and at the file name (dmg only). A format that
 * gains a driver leaves this list.
 */
public final class UnsupportedFormats {
    private UnsupportedFormats() {
    }

    /** The recognisers, in no particular order (their scores never tie with each other but dmg/cloop). */
    public static List<ImageFormat> all() {
        return List.of(
                new UnsupportedFormat("luks", "LUKS", UnsupportedFormats::luks),
                new UnsupportedFormat("bochs", "Bochs", UnsupportedFormats::bochs),
                new UnsupportedFormat("cloop", "cloop", (h, n) -> startsWith(h, 0, CLOOP_SCRIPT) ? 2 : 0),
                // qemu's dmg_probe looks only at the name (case-sensitive), never at the content
                new UnsupportedFormat("dmg", "DMG", (h, n) -> n != null && n.length() > 4 && n.endsWith(".dmg")
                        ? 2 : 0));
    }

    private static final String CLOOP_SCRIPT = "#!/bin/sh\n#V2.0 Format\nmodprobe cloop file=$0 && mount -r -t "
            + "iso9660 /dev/cloop $1\n";

    /** "LUKS\xba\xbe" and version 1 (BE16 at 6); qemu 7.2 probes no LUKS2. */
    private static int luks(ByteBuffer h, String name) {
        return startsWith(h, 0, "LUKS\u00ba\u00be") && h.get(6) == 0 && h.get(7) == 1 ? 100 : 0;
    }

    /** NUL-terminated magic, type "Redolog", subtype "Growing", version 1 or 2 (LE32 at 64). */
    private static int bochs(ByteBuffer h, String name) {
        int version = le32(h, 64);
        return startsWith(h, 0, "Bochs Virtual HD Image\0") && startsWith(h, 32, "Redolog\0")
                && startsWith(h, 48, "Growing\0") && (version == 0x00020000 || version == 0x00010000) ? 100 : 0;
    }

    private static boolean startsWith(ByteBuffer h, int at, String s) {
        byte[] b = s.getBytes(StandardCharsets.ISO_8859_1);
        if (at + b.length > h.limit()) {
            return false;
        }
        for (int i = 0; i < b.length; i++) {
            if (h.get(at + i) != b[i]) {
                return false;
            }
        }
        return true;
    }

    private static int le32(ByteBuffer h, int at) {
        return h.order(ByteOrder.LITTLE_ENDIAN).getInt(at);
    }
}
