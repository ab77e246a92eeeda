package io.diskmorph.cli;

import com.fasterxml.jackson.databind.JsonNode;
import io.diskmorph.image.ExitCodes;
import io.diskmorph.testing.Dm;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * '-o help' under convert and measure: the target's create options (the
 * list create -o help prints), and what --in-place does with each, checked
 * against what an in-place conversion really does.
 */
class FormatOptionsHelpTest {
    @TempDir
    Path dir;

    /**
     * A value for every option an in-place conversion takes, other than its
     * default, and how to read it back from the result; a new option
     * without one fails the test until someone checks it.
     */
    private static final Map<String, Map<String, String>> SAMPLES = Map.of(
            "qcow2", Map.of("compat", "0.10", "cluster_size", "128k", "refcount_bits", "64",
                    "lazy_refcounts", "on", "extended_l2", "on", "compression_type", "zstd"),
            "qed", Map.of("cluster_size", "128k", "table_size", "8"));

    private static String createHelp(String format) {
        return Dm.run("create", "-f", format, "-o", "help").ok().out();
    }

    /** The in-place section: option names after "takes:" and after "refuses:", in order. */
    private record InPlace(List<String> taken, List<String> refused) {
        static InPlace parse(String help) {
            List<String> taken = new ArrayList<>();
            List<String> refused = new ArrayList<>();
            List<String> into = null;
            for (String l : help.lines().toList()) {
                String t = l.strip();
                if (t.startsWith("takes:")) {
                    taken.addAll(Arrays.asList(t.substring(6).strip().split(", ")));
                } else if (t.startsWith("refuses:")) {
                    into = refused;
                    t = t.substring(8).strip();
                }
                if (into != null && !t.startsWith("(")) {
                    into.addAll(Arrays.asList(t.substring(0, t.indexOf(" - ")).split(", ")));
                }
            }
            return new InPlace(taken, refused);
        }
    }

    private Path sample(String name) {
        Path p = dir.resolve(name);
        Qemu.create(p, "raw", "16M");
        Qemu.io(p, "raw", "write -P 1 0 1M", "write -P 2 4M 512k", "write -P 3 15M 1M");
        return p;
    }

    @Test
    void convertListsTheTargetsOptionsAndWhatInPlaceTakes() throws Exception {
        for (String format : new String[]{"qcow2", "qed"}) {
            String help = Dm.run("convert", "-O", format, "-o", "help").ok().out();
            assertTrue(help.startsWith(createHelp(format)), "the options create lists:\n" + help);
            InPlace ip = InPlace.parse(help);
            List<String> all = new ArrayList<>(ip.taken());
            all.addAll(ip.refused());
            List<String> listed = createHelp(format).lines().skip(1).map(l -> l.strip().split(" ")[0]).toList();
            assertEquals(listed.stream().sorted().toList(), all.stream().sorted().toList(),
                    "every option is either taken or refused in place:\n" + help);
            assertTrue(ip.refused().containsAll(List.of("backing_file", "backing_fmt")), help);

            // what the help says is taken, an in-place conversion takes and the result has
            for (String option : ip.taken()) {
                String value = SAMPLES.get(format).get(option);
                assertNotNull(value, format + " option " + option + " is taken in place: give it a sample value");
                Path img = sample(format + "-" + option + ".img");
                Path reference = sample(format + "-" + option + ".ref");
                Dm.run("convert", "--in-place", "-O", format, "-o", option + "=" + value, img).ok();
                assertEquals(value, readBack(img, format, option), format + " " + option);
                assertEquals(0, Qemu.img("compare", "-f", format, "-F", "raw", img, reference).exitCode());
                assertEquals(0, Qemu.img("check", "-f", format, img).exitCode());
            }
            // what it says is refused, is refused: one line, exit 64, the file untouched, no journal
            for (String option : ip.refused()) {
                Path img = sample(format + "-" + option + ".img");
                byte[] before = Files.readAllBytes(img);
                Qemu.create(dir.resolve("base.raw"), "raw", "16M");
                Dm.Result r = Dm.run("convert", "--in-place", "-O", format, "-o",
                        option + "=" + (option.equals("backing_fmt") ? "raw" : option.equals("preallocation")
                                ? "metadata" : "base.raw"), img);
                assertEquals(ExitCodes.USAGE, r.exitCode(), option + ": " + r.out() + r.err());
                assertTrue(r.oneLineError().contains(option + " does not apply to an in-place conversion"),
                        r.err());
                assertArrayEquals(before, Files.readAllBytes(img), option + ": file changed");
                try (var files = Files.list(dir)) {
                    assertTrue(files.noneMatch(f -> f.toString().endsWith(".dmjournal")), "journal left");
                }
            }
        }
    }

    /** The option's value as qemu-img info reports it (QED's table size from its header). */
    private static String readBack(Path img, String format, String option) throws IOException {
        if (format.equals("qed")) {
            ByteBuffer h = ByteBuffer.wrap(Files.readAllBytes(img), 0, 16).order(ByteOrder.LITTLE_ENDIAN);
            long value = option.equals("cluster_size") ? h.getInt(4) : h.getInt(8);
            return option.equals("cluster_size") ? (value >> 10) + "k" : String.valueOf(value);
        }
        JsonNode info = Qemu.img("info", "--output=json", "-f", format, img).ok().json();
        JsonNode data = info.get("format-specific").get("data");
        return switch (option) {
            case "cluster_size" -> (info.get("cluster-size").asLong() >> 10) + "k";
            case "lazy_refcounts", "extended_l2" -> data.get(option.replace('_', '-')).asBoolean() ? "on" : "off";
            default -> data.get(option.replace('_', '-')).asText();
        };
    }

    /**
     * A new backing file given in place used to be written into the header:
     * the holes of the converted raw image then read the backing file's data.
     */
    @Test
    void inPlaceKeepsTheGuestContentInsteadOfTakingANewBackingFile() throws Exception {
        Path img = sample("guest.raw");
        Path base = dir.resolve("base.raw");
        Qemu.create(base, "raw", "16M");
        Qemu.io(base, "raw", "write -P 9 0 16M");
        byte[] before = Files.readAllBytes(img);
        Dm.Result r = Dm.run("convert", "--in-place", "-O", "qcow2", "-o", "backing_file=base.raw,backing_fmt=raw",
                img);
        assertEquals(ExitCodes.USAGE, r.exitCode(), r.out());
        assertArrayEquals(before, Files.readAllBytes(img));
        // measure --in-place plans the same conversion and refuses the same way
        assertEquals(ExitCodes.USAGE, Dm.run("measure", "--in-place", "-O", "qed", "-o", "backing_file=base.raw",
                img).exitCode());
    }

    @Test
    void measureListsTheTargetsOptions() {
        String help = Dm.run("measure", "-O", "qed", "-o", "help").ok().out();
        assertTrue(help.startsWith(createHelp("qed")), help);
        assertEquals(List.of("cluster_size", "table_size"), InPlace.parse(help).taken(), help);
        // qemu-img takes help as one item of a list too
        assertEquals(help, Dm.run("measure", "-O", "qed", "-o", "cluster_size=4k,help").ok().out());
    }

    @Test
    void rawAndUnsupportedTargets() {
        String help = Dm.run("convert", "-o", "help").ok().out(); // a copy's default target: raw
        assertTrue(help.startsWith(createHelp("raw")), help);
        assertTrue(help.contains("--in-place: raw takes no options"), help);
        Dm.Result r = Dm.run("convert", "--in-place", "-O", "raw", "-o", "preallocation=full", sample("r.raw"));
        assertEquals(ExitCodes.USAGE, r.exitCode(), "and indeed: " + r.err());

        Dm.Result none = Dm.run("convert", "-O", "bochs", "-o", "help"); // a format without a driver
        assertEquals(ExitCodes.UNSUPPORTED, none.exitCode());
        assertTrue(none.oneLineError().contains("bochs images are not supported"), none.err());
                String vmdk = Dm.run("convert", "-O", "vmdk", "-o", "help").ok().out(); // in place, but no parent
        assertTrue(vmdk.contains("subformat") && vmdk.contains("--in-place builds vmdk")
                && vmdk.contains("refuses: backing_file, backing_fmt"), vmdk);
        // without help, IMAGE is still required
        Dm.Result missing = Dm.run("convert", "-O", "qcow2");
        assertEquals(ExitCodes.USAGE, missing.exitCode());
        assertTrue(missing.err().startsWith("diskmorph: missing IMAGE"), missing.err());
    }
}
