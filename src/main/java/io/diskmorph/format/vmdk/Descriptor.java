package io.diskmorph.format.vmdk;

import io.diskmorph.image.CorruptImageException;
import io.diskmorph.image.ImageException;
import io.diskmorph.image.UnsupportedFeatureException;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * A VMDK descriptor: the text that names a disk's extents, in a file of its
 * own (NAME.vmdk beside NAME-flat.vmdk, NAME-s001.vmdk, ...) or embedded in a
 * sparse extent. Lines are {@code key=value} (the value optionally quoted),
 * extent lines ({@code ACCESS SECTORS TYPE ["FILE" [START]]}), comments and
 * blank lines; everything else is ignored, as qemu ignores it.
 *
 * <p>Where qemu 7.2 silently misreads (block/vmdk.c, vmdk_parse_extents),
 * this parser is strict instead: qemu drops RDONLY, NOACCESS, ZERO and
 * unknown extent lines, which shortens the disk and shifts every later
 * extent; here RDONLY extents are read, ZERO extents read zeros, and the
 * rest is refused by {@link VmdkImage}. Everything is bounded: the text (as
 * qemu, under 1 MiB), the number of extents, the length of a file name.
 */
final class Descriptor {
    /** qemu reads at most 1 MiB - 1 bytes of descriptor (vmdk_read_desc). */
    static final int MAX_BYTES = (1 << 20) - 1;
    /** Hosted disks split in 2 GB extents reach 8 TB with 4096; more is refused, not opened. */
    static final int MAX_EXTENTS = 4096;
    /** PATH_MAX - 1. */
    static final int MAX_NAME_BYTES = 4095;
    /** Sizes and start sectors whose byte value fits in a long. */
    static final long MAX_SECTORS = Long.MAX_VALUE / VmdkImage.SECTOR;

    /** No parent: parentCID=ffffffff. */
    static final long NO_PARENT_CID = 0xffffffffL;

    enum Access { RW, RDONLY, NOACCESS }

    /**
     * One extent line.
     *
     * @param line        1-based line number, for messages
     * @param sectors     size in 512-byte sectors (a sparse extent's header has the last word, as in qemu)
     * @param type        FLAT, VMFS, SPARSE, VMFSSPARSE, SESPARSE, ZERO, or another word (refused later)
     * @param fileName    as written between the quotes, or null (ZERO)
     * @param startSector where a flat extent's data starts in its file, or -1 when the line has none
     */
    record ExtentLine(int line, Access access, long sectors, String type, String fileName, long startSector) {
    }

    /** CID, or -1 when the text has no CID line. */
    final long cid;
    /** parentCID, or -1 when the text has none. */
    final long parentCid;
    /** createType, or null. */
    final String createType;
    /** parentFileNameHint, or null. */
    final String parentFileNameHint;
    final List<ExtentLine> extents;

    private Descriptor(long cid, long parentCid, String createType, String parentFileNameHint,
                       List<ExtentLine> extents) {
        this.cid = cid;
        this.parentCid = parentCid;
        this.createType = createType;
        this.parentFileNameHint = parentFileNameHint;
        this.extents = extents;
    }

    /**
     * Parses the first {@code length} bytes of {@code bytes} (up to the first
     * NUL, which ends the text for qemu too). {@code where} names the file in
     * messages.
     */
    static Descriptor parse(byte[] bytes, int length, String where) throws ImageException {
        int end = 0;
        while (end < length && bytes[end] != 0) {
            end++;
        }
        String text = new String(bytes, 0, end, StandardCharsets.UTF_8);
        long cid = -1;
        long parentCid = -1;
        String createType = null;
        String parentHint = null;
        List<ExtentLine> extents = new ArrayList<>();
        int lineNumber = 0;
        for (int start = 0; start <= text.length(); ) {
            int nl = text.indexOf('\n', start);
            int lineEnd = nl < 0 ? text.length() : nl;
            lineNumber++;
            String line = text.substring(start, lineEnd).strip();
            start = lineEnd + 1;
            if (line.isEmpty() || line.charAt(0) == '#') {
                continue;
            }
            String first = firstWord(line);
            Access access = access(first);
            if (access != null) {
                if (extents.size() == MAX_EXTENTS) {
                    throw new UnsupportedFeatureException(where + ": the VMDK descriptor lists more than "
                            + MAX_EXTENTS + " extents");
                }
                extents.add(extentLine(line, first.length(), access, lineNumber, where));
                continue;
            }
            int eq = line.indexOf('=');
            if (eq <= 0) {
                continue;
            }
            String key = line.substring(0, eq).strip();
            String value = unquote(line.substring(eq + 1).strip());
            // the first occurrence counts (qemu finds values with strstr)
            switch (key) {
                case "CID" -> cid = cid >= 0 ? cid : hex32(value, "CID", lineNumber, where);
                case "parentCID" -> parentCid = parentCid >= 0 ? parentCid : hex32(value, "parentCID", lineNumber,
                        where);
                case "createType" -> createType = createType != null ? createType : value;
                case "parentFileNameHint" -> parentHint = parentHint != null ? parentHint : value;
                default -> {
                    // ddb.*, version, encoding, changeTrackPath...: nothing a reader needs
                }
            }
        }
        return new Descriptor(cid, parentCid, createType, parentHint, List.copyOf(extents));
    }

    private static String firstWord(String line) {
        int i = 0;
        while (i < line.length() && !Character.isWhitespace(line.charAt(i))) {
            i++;
        }
        return line.substring(0, i);
    }

    private static Access access(String word) {
        return switch (word) {
            case "RW" -> Access.RW;
            case "RDONLY" -> Access.RDONLY;
            case "NOACCESS" -> Access.NOACCESS;
            default -> null;
        };
    }

    private static String unquote(String v) {
        return v.length() >= 2 && v.charAt(0) == '"' && v.charAt(v.length() - 1) == '"'
                ? v.substring(1, v.length() - 1) : v;
    }

    /** A hexadecimal 32-bit value, as qemu's sscanf("%x") reads CID and parentCID (an optional 0x). */
    private static long hex32(String v, String key, int line, String where) throws CorruptImageException {
        String digits = v.startsWith("0x") || v.startsWith("0X") ? v.substring(2) : v;
        if (digits.isEmpty() || digits.length() > 8) {
            throw bad(where, line, key + " '" + abbreviate(v) + "' is not a 32-bit hexadecimal number");
        }
        long value = 0;
        for (int i = 0; i < digits.length(); i++) {
            int d = Character.digit(digits.charAt(i), 16);
            if (d < 0) {
                throw bad(where, line, key + " '" + abbreviate(v) + "' is not a 32-bit hexadecimal number");
            }
            value = value << 4 | d;
        }
        return value;
    }

    /**
     * {@code ACCESS SECTORS TYPE ["FILE" [START]]}: FLAT lines need START
     * and VMFS lines must not have one (qemu's rule), sparse types take none;
     * anything after START (device extents' partition data) is ignored.
     */
    private static ExtentLine extentLine(String line, int at, Access access, int number, String where)
            throws ImageException {
        Cursor c = new Cursor(line, at);
        long sectors = c.number();
        if (sectors < 0) {
            throw bad(where, number, "invalid extent line (size in sectors): " + abbreviate(line));
        }
        String type = c.word();
        if (type.isEmpty()) {
            throw bad(where, number, "invalid extent line (no extent type): " + abbreviate(line));
        }
        String name = null;
        long start = -1;
        c.skipSpace();
        if (c.peek() == '"') {
            int close = line.indexOf('"', c.pos + 1);
            if (close < 0) {
                throw bad(where, number, "invalid extent line (unterminated file name): " + abbreviate(line));
            }
            name = line.substring(c.pos + 1, close);
            if (name.getBytes(StandardCharsets.UTF_8).length > MAX_NAME_BYTES) {
                throw bad(where, number, "extent file name longer than " + MAX_NAME_BYTES + " bytes");
            }
            // qemu stops a name at CR or LF and skips the line: a name with control characters is damage
            for (int i = 0; i < name.length(); i++) {
                if (name.charAt(i) < 0x20 || name.charAt(i) == 0x7f) {
                    throw bad(where, number, "extent file name '" + abbreviate(name) + "' holds control characters");
                }
            }
            c.pos = close + 1;
            c.skipSpace();
            if (!c.atEnd()) {
                start = c.number();
                if (start < 0) {
                    throw bad(where, number, "invalid extent line (start sector): " + abbreviate(line));
                }
            }
        } else if (!c.atEnd()) {
            throw bad(where, number, "invalid extent line (file name not in double quotes): " + abbreviate(line));
        }
        boolean fileExtent = !type.equals("ZERO");
        if (fileExtent && name == null && isReadableType(type)) {
            throw bad(where, number, "invalid extent line (" + type + " extent without a file name): "
                    + abbreviate(line));
        }
        if (type.equals("FLAT") && start < 0) {
            throw bad(where, number, "invalid extent line (FLAT extent without a start sector): " + abbreviate(line));
        }
        if (!type.equals("FLAT") && start >= 0 && isReadableType(type)) {
            throw bad(where, number, "invalid extent line (a " + type + " extent has no start sector): "
                    + abbreviate(line));
        }
        return new ExtentLine(number, access, sectors, type, name, start);
    }

    /** The extent types this driver reads. */
    static boolean isReadableType(String type) {
        return switch (type) {
            case "FLAT", "VMFS", "SPARSE", "VMFSSPARSE", "SESPARSE", "ZERO" -> true;
            default -> false;
        };
    }

    private static CorruptImageException bad(String where, int line, String problem) {
        return new CorruptImageException("VMDK descriptor", -1, where + ": line " + line + ": " + problem);
    }

    /** A line for a message: printable, at most 80 characters. */
    static String abbreviate(String s) {
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < s.length() && b.length() < 80; i++) {
            char ch = s.charAt(i);
            b.append(ch < 0x20 || ch == 0x7f ? '?' : ch);
        }
        return s.length() > 80 ? b + "..." : b.toString();
    }

    /** Reads words and decimal numbers of one line. */
    private static final class Cursor {
        private final String s;
        int pos;

        Cursor(String s, int pos) {
            this.s = s;
            this.pos = pos;
        }

        boolean atEnd() {
            return pos >= s.length();
        }

        char peek() {
            return atEnd() ? 0 : s.charAt(pos);
        }

        void skipSpace() {
            while (!atEnd() && Character.isWhitespace(s.charAt(pos))) {
                pos++;
            }
        }

        String word() {
            skipSpace();
            int from = pos;
            while (!atEnd() && !Character.isWhitespace(s.charAt(pos)) && s.charAt(pos) != '"') {
                pos++;
            }
            return s.substring(from, pos);
        }

        /** A decimal number up to {@link #MAX_SECTORS} followed by a space or the end; -1 otherwise. */
        long number() {
            String w = word();
            if (w.isEmpty() || w.length() > 19) {
                return -1;
            }
            long v = 0;
            for (int i = 0; i < w.length(); i++) {
                char ch = w.charAt(i);
                if (ch < '0' || ch > '9') {
                    return -1;
                }
                v = v * 10 + (ch - '0');
                if (v > MAX_SECTORS) {
                    return -1;
                }
            }
            return v;
        }
    }
}
