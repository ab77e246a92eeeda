package io.diskmorph.storage;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * The kernel's table of byte-range locks ({@code /proc/locks}), read to test
 * whether anyone holds a lock on a byte of a file: what F_OFD_GETLK answers,
 * without a native call. A read-only open uses it so that it needs no
 * java.lang.foreign set-up (about 60 ms at every start).
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
        try {
            return new LockTable(new String(Files.readAllBytes(PROC_LOCKS), StandardCharsets.ISO_8859_1));
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
        String id = String.format("%02x:%02x:%d ", major, minor, inode);
        for (int at = text.indexOf(id); at >= 0; at = text.indexOf(id, at + 1)) {
            if (at > 0 && text.charAt(at - 1) != ' ' && text.charAt(at - 1) != '\t') {
                continue; // the end of a longer number
            }
            int lineStart = text.lastIndexOf('\n', at) + 1;
            int lineEnd = text.indexOf('\n', at);
            String[] f = text.substring(lineStart, lineEnd < 0 ? text.length() : lineEnd).trim().split("\\s+");
            // id: kind mode type pid dev:ino start end
            if (f.length < 8 || !(f[1].equals("POSIX") || f[1].equals("OFDLCK"))) {
                continue; // a waiter ("->"), an flock() lock or a lease
            }
            try {
                long start = Long.parseLong(f[6]);
                long last = f[7].equals("EOF") ? Long.MAX_VALUE : Long.parseLong(f[7]);
                if (start <= offset && offset <= last) {
                    return true;
                }
            } catch (NumberFormatException e) {
                // a line this parser does not know: not a lock it can judge
            }
        }
        return false;
    }
}
