package io.diskmorph.cli;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;

class AotTrainingTest {
    @TempDir
    Path dir;

    /**
     * The launcher's cache holds only what the training ran: every command line of it must work, or
     * the cache silently misses that path.
     */
    @Test
    void everyTrainingCommandLineSucceeds() throws Exception {
        AotTraining.trainAll(dir, List.of("info", "map", "check", "compare", "measure", "create", "convert",
                "rollback", "recover", "--version"));
        assertEquals(List.of(), AotTraining.failures());
    }
}
