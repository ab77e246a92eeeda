package io.diskmorph.format.vpc;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/** Hand edits of VHD files for tests: fields of a footer (both copies) or the dynamic header, checksums kept. */
final class VpcFiles {
    private VpcFiles() {
    }

    interface Edit {
        void apply(ByteBuffer b);
    }

    /** Edits the footer at the end (and the copy at 0 when the file has one), then seals their checksums. */
    static void editFooters(Path img, Edit edit) throws IOException {
        try (FileChannel ch = FileChannel.open(img, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            long end = ch.size() - 512;
            editAt(ch, end, edit, VpcFooter.OFF_CHECKSUM, 512);
            ByteBuffer head = ByteBuffer.allocate(8);
            ch.read(head, 0);
            if (new String(head.array(), StandardCharsets.US_ASCII).equals("conectix")) {
                editAt(ch, 0, edit, VpcFooter.OFF_CHECKSUM, 512);
            }
        }
    }

    /** Edits the dynamic header at 512 (where qemu puts it) and seals its checksum. */
    static void editHeader(Path img, Edit edit) throws IOException {
        try (FileChannel ch = FileChannel.open(img, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            editAt(ch, 512, edit, VpcDynamicHeader.OFF_CHECKSUM, 1024);
        }
    }

    /** Writes raw bytes (no checksum kept). */
    static void poke(Path img, long offset, byte... bytes) throws IOException {
        try (FileChannel ch = FileChannel.open(img, StandardOpenOption.WRITE)) {
            ch.write(ByteBuffer.wrap(bytes), offset);
        }
    }

    private static void editAt(FileChannel ch, long at, Edit edit, int checksumOffset, int size) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(size);
        ch.read(b, at);
        edit.apply(b.clear());
        b.putInt(checksumOffset, VpcFooter.checksum(b.array(), checksumOffset));
        ch.write(b.clear(), at);
    }

    static ByteBuffer bytes(String s) {
        return ByteBuffer.wrap(s.getBytes(StandardCharsets.ISO_8859_1));
    }
}
