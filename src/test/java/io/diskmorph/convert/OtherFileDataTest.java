package io.diskmorph.convert;

import io.diskmorph.image.ExitCodes;
import io.diskmorph.image.Mapping;
import io.diskmorph.image.UnsupportedFeatureException;
import io.diskmorph.storage.MemoryStorage;
import io.diskmorph.storage.Storage;
import io.diskmorph.testing.ScriptedImage;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.ByteBuffer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The engine's own rule for sources, whatever a driver declares: a data
 * answer naming a file other than the image's own (an extent file) can be
 * neither kept nor journaled, so the survey refuses it; an answer naming the
 * image's own file (a monolithic sparse VMDK names it), or none, is data like
 * any other.
 */
class OtherFileDataTest {
    private static final int K4 = ScriptedImage.PIECE;

    private static final UnitWalker.Rules RULES = new UnitWalker.Rules() {
        @Override
        public long clusterSize() {
            return K4;
        }

        @Override
        public long headerZone() {
            return K4;
        }

        @Override
        public boolean canKeepDataAt(long hostOffset) {
            return hostOffset >= K4;
        }

        @Override
        public boolean supportsZeroClusters() {
            return true;
        }
    };

    /** A file of {@code clusters} clusters, each holding a byte of data (no holes). */
    private static MemoryStorage written(String name, int clusters) throws IOException {
        MemoryStorage s = new MemoryStorage(name);
        for (int c = 0; c < clusters; c++) {
            s.write(ByteBuffer.wrap(new byte[]{7}), (long) c * K4 + 100);
        }
        return s;
    }

    /** Guest cluster i at host cluster i + 1 of {@code files[i]} (null: the image's own file). */
    private static ScriptedImage image(MemoryStorage self, Storage... files) {
        Mapping.Data[] pieces = new Mapping.Data[files.length];
        for (int i = 0; i < files.length; i++) {
            pieces[i] = new Mapping.Data(K4, (i + 1L) * K4, files[i]);
        }
        return new ScriptedImage(self, null, pieces);
    }

    @Test
    void dataInTheImagesOwnFileIsKept() throws IOException {
        MemoryStorage self = written("self", 4);
        try (ScriptedImage img = image(self, self, null, self)) {
            UnitWalker w = new UnitWalker(img, RULES, false);
            int kept = 0;
            while (w.next()) {
                assertEquals(UnitWalker.Kind.KEEP, w.kind, "unit at " + w.guestOffset);
                kept++;
            }
            assertEquals(3, kept);
        }
    }

    @Test
    void dataInAnotherFileIsRefused() throws IOException {
        MemoryStorage self = written("self", 4);
        MemoryStorage extent = written("disk-s002.vmdk", 4);
        try (ScriptedImage img = image(self, self, extent, self)) {
            UnitWalker w = new UnitWalker(img, RULES, false);
            assertTrue(w.next());
            assertEquals(UnitWalker.Kind.KEEP, w.kind);
            UnsupportedFeatureException e = assertThrows(UnsupportedFeatureException.class, w::next);
            assertEquals(ExitCodes.UNSUPPORTED, e.exitCode());
            assertTrue(e.getMessage().contains("offset 4096 lives in another file (disk-s002.vmdk)")
                    && !e.getMessage().contains("\n"), e.getMessage());
        }
    }
}
