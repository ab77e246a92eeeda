package io.diskmorph.cli;

import io.diskmorph.testing.Dm;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** info's human output next to qemu-img info's (both print dates in this process's time zone). */
class InfoCommandTest {
    @TempDir
    Path dir;

    /** The "Snapshot list:" section, header to the line before the next section. */
    private static List<String> snapshotSection(String info) {
        List<String> out = new ArrayList<>();
        boolean in = false;
        for (String l : info.lines().toList()) {
            if (l.equals("Snapshot list:")) {
                in = true;
            } else if (in && !l.isEmpty() && !Character.isDigit(l.charAt(0)) && !l.startsWith("ID ")) {
                break;
            }
            if (in) {
                out.add(l);
            }
        }
        return out;
    }

    private void assertSnapshotListLikeQemu(Path img, int snapshots) {
        List<String> qemu = snapshotSection(Qemu.img("info", img).ok().out());
        assertEquals(2 + snapshots, qemu.size(), "qemu-img's section: " + qemu);
        assertEquals(qemu, snapshotSection(Dm.run("info", img).ok().out()));
    }

    @Test
    void snapshotListAsQemuImgPrintsIt() {
        Path img = dir.resolve("s.qcow2");
        Qemu.create(img, "qcow2", "64M");
        Qemu.io(img, "qcow2", "write -P 1 0 64k");
        Qemu.img("snapshot", "-c", "s1", img).ok();
        Qemu.img("snapshot", "-c", "a-tag-longer-than-its-column", img).ok();
        assertSnapshotListLikeQemu(img, 2);
    }

    /**
     * VM clocks qemu-img snapshot cannot make (it records 0): 123 h, which
     * widens the hours, and 59 min 59.999 s; an entry whose icount is absent
     * (all ones, as qemu stores "none") and a VM state size. Written into the
     * snapshot table by hand, per docs/interop/qcow2.rst.
     */
    @Test
    void snapshotClocksAndMissingIcountAsQemuImgPrintsThem() throws IOException {
        Path img = dir.resolve("c.qcow2");
        Qemu.create(img, "qcow2", "64M");
        Qemu.img("snapshot", "-c", "long-run", img).ok();
        Qemu.img("snapshot", "-c", "short", img).ok();
        try (FileChannel ch = FileChannel.open(img, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            long entry = read(ch, 64, 8).getLong(); // snapshots_offset
            long[] clocks = {(123L * 3600 + 4 * 60 + 5) * 1_000_000_000L + 678_999_999L,
                    3_599_999_000_000L};
            for (int i = 0; i < 2; i++) {
                ByteBuffer h = read(ch, entry, 40);
                int idSize = Short.toUnsignedInt(h.getShort(12));
                int nameSize = Short.toUnsignedInt(h.getShort(14));
                long extraSize = Integer.toUnsignedLong(h.getInt(36));
                assertTrue(extraSize >= 24, "qemu 7.2 writes icount in the extra data");
                ch.write(ByteBuffer.allocate(8).putLong(0, clocks[i]), entry + 24);
                if (i == 1) {
                    ch.write(ByteBuffer.allocate(4).putInt(0, 3 << 19), entry + 32); // vm_state_size 1.5 MiB
                    ch.write(ByteBuffer.allocate(8).putLong(0, 3 << 19), entry + 40); // vm_state_size_large
                    ch.write(ByteBuffer.allocate(8).putLong(0, -1), entry + 40 + 16); // icount: none
                }
                entry += (40 + extraSize + idSize + nameSize + 7) & ~7L;
            }
        }
        assertSnapshotListLikeQemu(img, 2);
        List<String> ours = snapshotSection(Dm.run("info", img).ok().out());
        // 13 characters fill the 13 columns: the clock touches the date, as qemu-img prints it
        assertTrue(ours.get(2).matches(".* \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d123:04:05\\.678 +0"), ours.get(2));
        assertTrue(ours.get(3).contains(" 00:59:59.999") && ours.get(3).endsWith(".999" + " ".repeat(11)),
                "no icount: a blank column: [" + ours.get(3) + "]");
    }

    private static ByteBuffer read(FileChannel ch, long at, int n) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(n);
        ch.read(b, at);
        return b.flip();
    }
}
