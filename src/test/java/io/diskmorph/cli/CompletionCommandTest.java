package io.diskmorph.cli;

import io.diskmorph.testing.Dm;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.*;

/**
 * {@code diskmorph completion bash}, run by a real bash: the script is
 * sourced, COMP_WORDS set as bash sets them, the completion function
 * called, COMPREPLY read back.
 */
class CompletionCommandTest {
    @TempDir
    Path dir;

    private Path script() throws Exception {
        Path s = dir.resolve("diskmorph.bash");
        if (!Files.exists(s)) {
            Files.writeString(s, Dm.run("completion", "bash").ok().out());
        }
        return s;
    }

    /** What bash offers after the words given (the last one is the word being completed). */
    private List<String> complete(String... words) throws Exception {
        StringBuilder w = new StringBuilder();
        for (String x : words) {
            w.append(" '").append(x.replace("'", "'\\''")).append('\'');
        }
        String cmd = "source '" + script() + "'; COMP_WORDS=(diskmorph" + w + "); COMP_CWORD=" + words.length
                + "; _diskmorph; printf '%s\\n' \"${COMPREPLY[@]}\"";
        Qemu.Result r = Qemu.run("bash", "-c", cmd).ok();
        List<String> out = new ArrayList<>(r.out().lines().filter(l -> !l.isEmpty()).toList());
        out.sort(null);
        return out;
    }

    @Test
    void commandsOptionsFormatsAndKeys() throws Exception {
        assertEquals(List.of("compare", "completion"), complete("comp"));
        assertTrue(complete("").containsAll(List.of("info", "map", "layout", "convert", "recover", "rollback")));
        assertEquals(List.of("--in-place"), complete("convert", "--in"));
        assertEquals(List.of("qcow", "qcow2", "qed"), complete("convert", "--in-place", "-O", "q"));
        assertEquals(List.of("cluster_size="), complete("convert", "-O", "qcow2", "-o", "clu"));
        assertEquals(List.of("cluster_size=64k,table_size="),
                complete("create", "-f", "qed", "-o", "cluster_size=64k,tab"));
        assertEquals(List.of("human", "json"), complete("info", "--output", ""));
        assertEquals(List.of("html", "json", "svg"), complete("layout", "--output", ""));
        Path img = dir.resolve("vm-disk.qcow2");
        Files.createFile(img);
        assertEquals(List.of(img.toString()), complete("info", dir + "/vm-"));
    }

    /** Every option each command's --help lists is offered after '-', and no other. */
    @Test
    void everyOptionOfEveryCommand() throws Exception {
        List<String> commands = new ArrayList<>();
        boolean listing = false;
        for (String l : Dm.run("--help").ok().out().lines().toList()) {
            if (l.equals("Commands:")) {
                listing = true;
            } else if (listing && l.startsWith("  ")) {
                commands.add(l.strip().split(" +")[0]);
            } else {
                listing = false;
            }
        }
        assertTrue(commands.size() >= 12, commands.toString());
        Pattern option = Pattern.compile("(?<![\\w-])(--?[A-Za-z][\\w-]*)");
        for (String c : commands) {
            TreeSet<String> help = new TreeSet<>();
            for (String l : Dm.run(c, "--help").ok().out().lines().toList()) {
                String t = l.strip();
                if (t.startsWith("-")) { // an option line: "-f, --format FMT  description"
                    Matcher m = option.matcher(t.split(" {2,}")[0]);
                    while (m.find()) {
                        help.add(m.group(1));
                    }
                }
            }
            help.add("--help");
            assertEquals(help, new TreeSet<>(complete(c, "-")), "options of " + c);
        }
    }

    @Test
    void otherShellsAreRefused() throws Exception {
        Dm.Result r = Dm.run("completion", "fish");
        assertEquals(io.diskmorph.image.ExitCodes.USAGE, r.exitCode(), r.err());
        assertTrue(r.oneLineError().contains("bash"), r.err());
        assertTrue(Arrays.asList(Dm.run("completion", "bash").ok().out().split("\n")).getLast()
                .startsWith("complete "));
    }
}
