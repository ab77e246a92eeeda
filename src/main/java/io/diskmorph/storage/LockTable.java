package io.diskmorph.storage;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The kernel's table of byte-range locks ({@code /proc/locks}), read to test
 * whether anyone holds a lock on a byte of a file: what F_OFD_GETLK answers,
 * without a native call. A read-only open uses it so that it needs no
 * native set-up (about 60 ms at every start through java.lang.foreign).
 *
 * <p>Lines look like {@code 1: OFDLCK ADVISORY READ -1 fd:01:1234 100 100}:
 * kind, mode, type, pid, device major:minor (hex) and inode, first and last
 * byte (or EOF). flock() locks and leases do not conflict with byte-range
 * locks and are ignored; lines with "->" are waiters, not holders.
 */
final class LockTable {
    private static final Path PROC_LOCKS = Path.of("/proc/locks");

    private final String text;

    private LockTable(String text) {
        this.text = text;
    }

    /** Whether this system offers the table to this process. */
    static boolean available() {
        return Files.isReadable(PROC_LOCKS);
    }

    /** The current table, or null when the system does not offer one. */
    static LockTable read() {
        // through a FileChannel, whose classes every open has loaded already (Files.readAllBytes and
        // friends cost a cold start about 20 ms of class loading)
        try (FileChannel ch = FileChannel.open(PROC_LOCKS)) {
            ByteBuffer buf = ByteBuffer.allocate(1 << 16);
            while (ch.read(buf) > 0) {
                if (!buf.hasRemaining()) {
                    buf = ByteBuffer.allocate(buf.capacity() * 2).put(buf.flip());
                }
            }
            return new LockTable(new String(buf.array(), 0, buf.position(), StandardCharsets.ISO_8859_1));
        } catch (IOException | SecurityException e) {
            return null;
        }
    }

    /** Builds a table from text in /proc/locks format (tests). */
    static LockTable of(String text) {
        return new LockTable(text);
    }

    /**
     * Whether a byte-range lock (POSIX or OFD, read or write) covers
     * {@code offset} of the file with this device number (st_dev as Java
     * reports it) and inode.
     */
    boolean anyLockOn(long dev, long inode, long offset) {
        long major = ((dev >>> 8) & 0xfff) | ((dev >>> 32) & ~0xfffL);
        long minor = (dev & 0xff) | ((dev >>> 12) & ~0xffL);
        // the kernel prints the file as %02x:%02x:%lu; only lines naming it are parsed, so a long
        // table (every lock of every process) costs one scan, not a string per line
        String id = hex2(major) + ":" + hex2(minor) + ":" + inode + " ";
        for (int at = text.indexOf(id); at >= 0; at = text.indexOf(id, at + 1)) {
            if (at > 0 && text.charAt(at - 1) != ' ' && text.charAt(at - 1) != '\t') {
                continue; // the end of a longer number
            }
            int lineStart = text.lastIndexOf('\n', at) + 1;
            int lineEnd = text.indexOf('\n', at);
            List<String> f = fields(text, lineStart, lineEnd < 0 ? text.length() : lineEnd);
            // id: kind mode type pid dev:ino start end
            if (f.size() < 8 || !(f.get(1).equals("POSIX") || f.get(1).equals("OFDLCK"))) {
                continue; // a waiter ("->"), an flock() lock or a lease
            }
            try {
                long start = Long.parseLong(f.get(6));
                long last = f.get(7).equals("EOF") ? Long.MAX_VALUE : Long.parseLong(f.get(7));
                if (start <= offset && offset <= last) {
                    return true;
                }
            } catch (NumberFormatException e) {
                // a line this parser does not know: not a lock it can judge
            }
        }
        return false;
    }

    private static String hex2(long v) {
        String h = Long.toHexString(v);
        return h.length() < 2 ? "0" + h : h;
    }

    /** The blank-separated fields of text[from, to) (no regular expressions: they cost start-up time). */
    private static List<String> fields(String text, int from, int to) {
        List<String> out = new ArrayList<>();
        int i = from;
        while (i < to) {
            while (i < to && Character.isWhitespace(text.charAt(i))) {
                i++;
            }
            int s = i;
            while (i < to && !Character.isWhitespace(text.charAt(i))) {
                i++;
            }
            if (i > s) {
                out.add(text.substring(s, i));
            }
        }
        return out;
    }
}
