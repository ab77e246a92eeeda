package io.diskmorph.image;

import io.diskmorph.storage.MemoryStorage;
import io.diskmorph.storage.Storage;
import io.diskmorph.testing.ScriptedImage;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;

/**
 * A data answer may name the file that holds it ({@link Mapping.Data#file()},
 * an image made of several files: VMDK extents). Reads go to that file, map
 * reports its name and never merges runs of two files (qemu-img map's rule:
 * same file, contiguous offsets), block status does not join them either, and
 * asking a file for holes ({@link DiskImage#mapReportsHostHolesAsZero(Mapping.Data)})
 * is a property of the answer's file.
 */
class DataFileMappingTest {
    private static final int K4 = 4096;

    private static MemoryStorage filled(String name, int length, int value) throws IOException {
        MemoryStorage s = new MemoryStorage(name);
        byte[] bytes = new byte[length];
        Arrays.fill(bytes, (byte) value);
        s.write(ByteBuffer.wrap(bytes), 0);
        return s;
    }

    /**
     * guest [0,4K) -> a@8K, [4K,8K) -> b@12K, [8K,12K) -> b@16K (past the end of b), [12K,16K) -> the
     * image's own file @0 (no file named); b is asked for holes (a flat extent, say).
     */
    private static ScriptedImage image(MemoryStorage a, MemoryStorage b) throws IOException {
        return new ScriptedImage(filled("self", K4, 3), b, new Mapping.Data(K4, 2 * K4, a),
                new Mapping.Data(K4, 3 * K4, b), new Mapping.Data(K4, 4 * K4, b), new Mapping.Data(K4, 0));
    }

    @Test
    void readsComeFromTheNamedFile() throws IOException {
        MemoryStorage a = filled("a", 12 * K4, 1);
        MemoryStorage b = filled("b", 4 * K4, 2);
        try (ScriptedImage img = image(a, b)) {
            ByteBuffer all = ByteBuffer.allocate(4 * K4);
            img.read(all, 0);
            byte[] want = new byte[4 * K4];
            Arrays.fill(want, 0, K4, (byte) 1);
            Arrays.fill(want, K4, 2 * K4, (byte) 2);
            Arrays.fill(want, 3 * K4, 4 * K4, (byte) 3);
            assertArrayEquals(want, all.array());
            assertSame(b, img.dataStorage((Mapping.Data) img.mapping(K4, 1)));
            assertSame(img.storage(), img.dataStorage((Mapping.Data) img.mapping(3 * K4, 1)));
        }
    }

    @Test
    void mapNamesTheFileAndDoesNotMergeAcrossFiles() throws IOException {
        try (ScriptedImage img = image(filled("a", 12 * K4, 1), filled("b", 4 * K4, 2))) {
            List<MapEntry> entries = new ArrayList<>();
            for (ChainMap m = new ChainMap(img, true); m.hasNext(); ) {
                entries.add(m.next());
            }
            // a@8K then b@12K: numerically contiguous, but another file; b@16K is past the end of b,
            // which it reports as zeros (b is asked for holes)
            assertEquals(List.of(
                    new MapEntry(0, K4, 0, true, false, true, 2 * K4, "a", false),
                    new MapEntry(K4, K4, 0, true, false, true, 3 * K4, "b", false),
                    new MapEntry(2 * K4, K4, 0, true, true, true, 4 * K4, "b", false),
                    new MapEntry(3 * K4, K4, 0, true, false, true, 0, "self", false)), entries);
        }
    }

    @Test
    void contiguousOffsetsInAnotherFileAreAnotherRun() throws IOException {
        MemoryStorage self = filled("self", 2 * K4, 3);
        MemoryStorage other = filled("other", 2 * K4, 4);
        // guest [0,4K) -> self@0, [4K,8K) -> other@4K: contiguous numbers, two files
        ScriptedImage img = new ScriptedImage(self, null, new Mapping.Data(K4, 0), new Mapping.Data(K4, K4, other));
        try (img) {
            ChainMap m = new ChainMap(img, true);
            assertEquals(new MapEntry(0, K4, 0, true, false, true, 0, "self", false), m.next());
            assertEquals(new MapEntry(K4, K4, 0, true, false, true, K4, "other", false), m.next());
            BlockStatus s = BlockStatus.of(img, 0, 2 * K4);
            assertEquals(K4, s.length(), "block status joined two files");
            Storage named = img.dataStorage((Mapping.Data) img.mapping(K4, K4));
            assertSame(other, named);
        }
    }
}
