package io.diskmorph.convert;

import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Map;
import java.util.Random;
import java.util.zip.CRC32C;

import static org.junit.jupiter.api.Assertions.*;

/**
 * A journal written by an earlier release (body version 1: no identity, no
 * witnesses, the target's first header sector in place of a commit record)
 * still recovers, on either side of the commit point. The bytes are laid
 * out here by hand, from the version-1 format as it was documented.
 */
class JournalVersion1Test {
    private static final int SECTOR = 512;

    /** A version-1 journal saving {@code saved} at {@code offset} of an image of {@code originalLength}. */
    private static byte[] journalV1(long originalLength, long finalLength, byte[] targetSector, long offset,
                                    byte[] saved) {
        ByteBuffer body = ByteBuffer.allocate(SECTOR * 32).order(ByteOrder.LITTLE_ENDIAN);
        body.put("DMJBODY1".getBytes(StandardCharsets.US_ASCII));
        int lengthAt = body.position();
        body.putLong(0).putLong(originalLength).putLong(finalLength);
        for (String s : new String[]{"qcow2", "qed"}) {
            byte[] b = s.getBytes(StandardCharsets.UTF_8);
            body.putInt(b.length).put(b);
        }
        body.put(targetSector);
        body.putInt(1);
        int headerEnd = body.position() + 24;
        long dataOffset = SECTOR + (headerEnd + SECTOR - 1) / SECTOR * SECTOR; // file offset of the saved bytes
        body.putLong(offset).putLong(saved.length).putLong(dataOffset);
        body.position((int) (dataOffset - SECTOR));
        body.put(saved);
        int crcAt = body.position();
        body.putLong(lengthAt, crcAt + 4); // body length, the CRC included
        CRC32C crc = new CRC32C();
        crc.update(body.array(), 0, crcAt);
        body.putInt(crcAt, (int) crc.getValue());
        byte[] file = new byte[SECTOR + crcAt + 4];
        System.arraycopy(body.array(), 0, file, SECTOR, crcAt + 4);
        ByteBuffer state = ByteBuffer.wrap(file, 0, SECTOR).order(ByteOrder.LITTLE_ENDIAN);
        state.put("DMJSTATE".getBytes(StandardCharsets.US_ASCII)).putInt(1).putInt(Journal.MODE_CONVERT).putInt(0)
                .putLong(0).putLong(0);
        CRC32C s = new CRC32C();
        s.update(file, 0, state.position());
        state.putInt((int) s.getValue());
        return file;
    }

    private static byte[] randomImage(int length) {
        byte[] b = new byte[length];
        new Random(3).nextBytes(b);
        return b;
    }

    @Test
    void beforeTheCommitPointTheOriginalIsRestored() throws IOException {
        byte[] original = randomImage(1 << 20);
        byte[] target = new byte[SECTOR];
        Arrays.fill(target, (byte) 0x7e);
        byte[] saved = Arrays.copyOfRange(original, 256 << 10, (256 << 10) + 8192);
        byte[] crashed = original.clone();
        Arrays.fill(crashed, 256 << 10, (256 << 10) + 8192, (byte) 0x55); // overwritten before the crash
        CrashSim sim = new CrashSim(Map.of(CrashChecker.IMAGE, crashed,
                CrashChecker.IMAGE + ".dmjournal", journalV1(original.length, 64 << 10, target, 256 << 10, saved)));
        assertEquals(Recovery.Outcome.RESTORED_SOURCE, Recovery.recover(CrashChecker.file(sim)));
        assertArrayEquals(original, read(sim));
        assertFalse(sim.dir().exists(CrashChecker.IMAGE + ".dmjournal"));
    }

    @Test
    void afterTheCommitPointTheConversionIsFinished() throws IOException {
        byte[] original = randomImage(1 << 20);
        byte[] target = Arrays.copyOf("QED\0 a committed target header".getBytes(StandardCharsets.US_ASCII), SECTOR);
        byte[] committed = original.clone();
        System.arraycopy(target, 0, committed, 0, SECTOR);
        CrashSim sim = new CrashSim(Map.of(CrashChecker.IMAGE, committed,
                CrashChecker.IMAGE + ".dmjournal", journalV1(original.length, 64 << 10, target, 0,
                        Arrays.copyOf(original, SECTOR))));
        assertEquals(Recovery.Outcome.COMPLETED_TARGET, Recovery.recover(CrashChecker.file(sim)));
        assertArrayEquals(Arrays.copyOf(committed, 64 << 10), read(sim), "cut to the final length");
        assertFalse(sim.dir().exists(CrashChecker.IMAGE + ".dmjournal"));
    }

    @Test
    void aFileThatHoldsNeitherHeaderIsRefused() throws IOException {
        byte[] original = randomImage(1 << 20);
        byte[] target = new byte[SECTOR];
        Arrays.fill(target, (byte) 0x7e);
        byte[] other = randomImage(1 << 20);
        Arrays.fill(other, 0, SECTOR, (byte) 0x11); // another file under the name: neither header at 0
        CrashSim sim = new CrashSim(Map.of(CrashChecker.IMAGE, other,
                CrashChecker.IMAGE + ".dmjournal", journalV1(original.length, 64 << 10, target, 0,
                        Arrays.copyOf(original, SECTOR))));
        assertThrows(io.diskmorph.image.JournalMismatchException.class, () -> Recovery.recover(CrashChecker.file(sim)));
        assertArrayEquals(other, read(sim));
        assertTrue(sim.dir().exists(CrashChecker.IMAGE + ".dmjournal"));
    }

    private static byte[] read(CrashSim sim) throws IOException {
        var s = sim.file(CrashChecker.IMAGE);
        ByteBuffer b = ByteBuffer.allocate(Math.toIntExact(s.size()));
        s.read(b, 0);
        return b.array();
    }
}
