package io.diskmorph.cli;

import io.diskmorph.image.ExitCodes;
import org.junit.jupiter.api.Test;

import java.lang.reflect.Field;
import java.lang.reflect.Modifier;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Set;
import java.util.TreeSet;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The README documents every exit code the program uses, and no other. */
class ReadmeExitCodesTest {
    /** The JVM's exit on SIGHUP, SIGINT and SIGTERM (128 + signal), after the shutdown hooks ran. */
    private static final Set<Integer> SIGNAL_EXITS = Set.of(128 + 1, 128 + 2, 128 + 15);

    private static String readme() throws Exception {
        return Files.readString(Path.of("README.md"));
    }

    @Test
    void exitCodeTableListsEveryCodeInUse() throws Exception {
        Set<Integer> used = new TreeSet<>(SIGNAL_EXITS);
        for (Field f : ExitCodes.class.getFields()) {
            if (Modifier.isStatic(f.getModifiers()) && f.getType() == int.class) {
                used.add(f.getInt(null));
            }
        }
        String readme = readme();
        String section = readme.substring(readme.indexOf("## Exit codes"));
        section = section.substring(0, section.indexOf("\n## ", 1));
        Set<Integer> documented = new TreeSet<>();
        for (String line : section.lines().toList()) {
            if (line.matches("\\| [0-9, ]+ \\|.*")) {
                for (String code : line.substring(2, line.indexOf(" |", 1)).split(", ")) {
                    documented.add(Integer.parseInt(code.strip()));
                }
            }
        }
        assertEquals(used, documented, "README's exit code table");
    }

    @Test
    void commandsTableMentionsOptionHelpWhereItWorks() throws Exception {
        for (String line : readme().lines().toList()) {
            if (line.startsWith("| `convert ") || line.startsWith("| `measure ") || line.startsWith("| `create ")) {
                assertTrue(line.contains("-o help"), "no -o help in: " + line);
            }
        }
    }
}
