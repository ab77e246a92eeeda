package io.diskmorph.cli;

import io.diskmorph.testing.Dm;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The README's first command: every step converts in place, verifies, and nothing moves that need not. */
class DemoCommandTest {
    @Test
    void demoConvertsVerifiesAndRollsBack() {
        Dm.Result r = Dm.run("demo", "--size", "96M");
        assertEquals(0, r.exitCode(), r.out() + r.err());
        String out = r.out();
        assertTrue(out.contains("2. in place raw -> qed"), out);
        assertTrue(out.contains("3. in place qed -> qcow2") && out.contains("rollback record kept"), out);
        assertTrue(out.contains("4. rollback qcow2 -> qed") && out.contains("back byte for byte"), out);
        assertTrue(out.contains("5. in place qed -> qcow2"), out);
        // qemu-img is installed for the tests: its check ran after every conversion
        assertEquals(3, out.lines().filter(l -> l.contains("qemu-img check clean")).count(), out);
        // after the first step (the header zone), nothing moves
        assertEquals(2, out.lines().filter(l -> l.contains("moved 0 B")).count(), out);
        assertTrue(out.contains("All steps verified"), out);
    }
}
