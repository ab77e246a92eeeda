package io.diskmorph.format.qcow2;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The L2 entry decoder against qcow2.rst's bit layout and qemu's cluster types. */
class L2EntryTest {
    private static final Qcow2Geometry STANDARD = new Qcow2Geometry(16, false, 4);
    private static final Qcow2Geometry EXTENDED = new Qcow2Geometry(16, true, 4);

    @Test
    void clusterTypes() {
        assertEquals(L2Entry.UNALLOCATED, L2Entry.type(0, false, false));
        assertEquals(L2Entry.NORMAL, L2Entry.type(L2Entry.normal(0x30000), false, false));
        assertEquals(L2Entry.ZERO_PLAIN, L2Entry.type(L2Entry.ZERO_FLAG, false, false));
        assertEquals(L2Entry.ZERO_ALLOC, L2Entry.type(0x30000 | L2Entry.ZERO_FLAG, false, false));
        // extended L2 entries have no zero flag; an external data file makes offset 0 with COPIED valid
        assertEquals(L2Entry.UNALLOCATED, L2Entry.type(L2Entry.ZERO_FLAG, true, false));
        assertEquals(L2Entry.NORMAL, L2Entry.type(L2Entry.COPIED, false, true));
        assertEquals(L2Entry.ZERO_PLAIN, L2Entry.type(L2Entry.COPIED | L2Entry.ZERO_FLAG, false, true));
        assertEquals(L2Entry.COMPRESSED, L2Entry.type(L2Entry.COMPRESSED_FLAG | 0x30000, true, false));
    }

    @Test
    void subclusterTypes() {
        long bitmap = 1L | 1L << (L2Entry.SUBCLUSTERS + 1);
        long entry = L2Entry.normal(0x30000);
        assertEquals(L2Entry.NORMAL, L2Entry.subclusterType(entry, bitmap, 0, true, false));
        assertEquals(L2Entry.ZERO_ALLOC, L2Entry.subclusterType(entry, bitmap, 1, true, false));
        assertEquals(L2Entry.UNALLOCATED_ALLOC, L2Entry.subclusterType(entry, bitmap, 2, true, false));
        assertEquals(L2Entry.ZERO_PLAIN, L2Entry.subclusterType(0, 1L << L2Entry.SUBCLUSTERS, 0, true, false));
        assertEquals(L2Entry.UNALLOCATED, L2Entry.subclusterType(0, 0, 5, true, false));
        assertEquals(0b1110L, L2Entry.subclusterMask(1, 3));
        assertEquals(L2Entry.ALL_ALLOCATED, L2Entry.subclusterMask(0, 31));
    }

    @Test
    void compressedDescriptorRoundTrips() {
        for (Qcow2Geometry geo : new Qcow2Geometry[]{STANDARD, new Qcow2Geometry(9, false, 4),
                new Qcow2Geometry(21, false, 4)}) {
            long host = (5L << geo.clusterBits) + 100;
            int length = (int) Math.min(geo.clusterSize - 1, 3000);
            long e = L2Entry.compressed(geo, host, length);
            assertTrue(L2Entry.isCompressed(e));
            assertEquals(host, L2Entry.compressedOffset(geo, e));
            assertTrue(L2Entry.compressedLength(geo, e) >= length, "covers the data");
            assertTrue(L2Entry.compressedLength(geo, e) - length < 512, "to the end of its last sector");
            long last = (host + length - 1) >>> geo.clusterBits;
            assertEquals(5, L2Entry.compressedFirstCluster(geo, e));
            assertEquals(last - 5 + 1, L2Entry.compressedClusters(geo, e));
        }
    }

    @Test
    void problemsAnOpenImageRefuses() {
        assertNull(L2Entry.problem(STANDARD, 3, L2Entry.normal(0x30000), 0, false));
        assertTrue(L2Entry.problem(STANDARD, 3, L2Entry.normal(0x30200), 0, false).contains("not cluster-aligned"));
        assertTrue(L2Entry.problem(STANDARD, 2, L2Entry.ZERO_FLAG, 0, false).contains("version 2"));
        assertTrue(L2Entry.problem(EXTENDED, 3, 0, 1, false).contains("subcluster bitmap"));
        assertTrue(L2Entry.problem(EXTENDED, 3, L2Entry.normal(0x30000), 1L | 1L << 32, false)
                .contains("subcluster bitmap"));
        assertTrue(L2Entry.problem(STANDARD, 3, L2Entry.COMPRESSED_FLAG, 0, true).contains("data file"));
    }
}
