package io.diskmorph.convert;

import io.diskmorph.image.AbstractDiskImage;
import io.diskmorph.image.ExitCodes;
import io.diskmorph.image.FormatRegistry;
import io.diskmorph.image.ImageFormat;
import io.diskmorph.image.ImageInfo;
import io.diskmorph.image.Mapping;
import io.diskmorph.image.OpenContext;
import io.diskmorph.image.UnsupportedFeatureException;
import io.diskmorph.storage.MemoryStorage;
import io.diskmorph.storage.Storage;
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
 * image's own file (a monolithic sparse VMDK names it) is data like any other.
 */
class OtherFileDataTest {
    private static final int K4 = 4096;

    /** Guest cluster i is host cluster i + 1 of the file {@code files[i]}. */
    private static final class ScriptedImage extends AbstractDiskImage {
        private final Storage[] files;

        ScriptedImage(Storage self, Storage... files) {
            super(self, OpenContext.readOnly(null));
            this.files = files;
        }

        @Override
        public ImageFormat format() {
            return FormatRegistry.plainFormat();
        }

        @Override
        public long virtualSize() {
            return (long) files.length * K4;
        }

        @Override
        public long clusterSize() {
            return K4;
        }

        @Override
        public Mapping mapping(long guestOffset, long maxLength) {
            int i = (int) (guestOffset / K4);
            long in = guestOffset % K4;
            return new Mapping.Data(Math.min(maxLength, K4 - in), (i + 1L) * K4 + in, files[i]);
        }

        @Override
        public void write(ByteBuffer src, long guestOffset) {
            throw new UnsupportedOperationException();
        }

        @Override
        public ImageInfo info() {
            throw new UnsupportedOperationException();
        }

        @Override
        public void flush() {
        }

        @Override
        protected void closeImage() {
        }
    }

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

    private static MemoryStorage written(String name, int clusters) throws IOException {
        MemoryStorage s = new MemoryStorage(name);
        s.write(ByteBuffer.wrap(new byte[clusters * K4]).put(0, (byte) 1), 0);
        for (int c = 0; c < clusters; c++) {
            s.write(ByteBuffer.wrap(new byte[]{7}), (long) c * K4 + 100); // data, not a hole
        }
        return s;
    }

    @Test
    void dataInTheImagesOwnFileIsKept() throws IOException {
        MemoryStorage self = written("self", 4);
        try (ScriptedImage img = new ScriptedImage(self, self, null, self)) {
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
        try (ScriptedImage img = new ScriptedImage(self, self, extent, self)) {
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
