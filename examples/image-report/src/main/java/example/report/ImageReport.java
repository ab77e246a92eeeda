package example.report;

import io.diskmorph.api.CheckResult;
import io.diskmorph.api.Diskmorph;
import io.diskmorph.api.DiskmorphException;
import io.diskmorph.api.ImageDetails;
import io.diskmorph.api.Repair;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

/**
 * Walks DIR and prints one JSON array: for every regular file its format,
 * sizes, backing file and a read-only consistency check, or the error that
 * kept it from being read (with the exit code the diskmorph command would
 * give).
 */
public final class ImageReport {
    private ImageReport() {
    }

    public static void main(String[] args) throws IOException {
        if (args.length != 1) {
            System.err.println("usage: ImageReport DIR");
            System.exit(64);
        }
        List<String> entries = new ArrayList<>();
        try (Stream<Path> files = Files.walk(Path.of(args[0]))) {
            for (Path p : files.filter(Files::isRegularFile).sorted().toList()) {
                entries.add(entry(p));
            }
        }
        System.out.println("[\n" + String.join(",\n", entries) + "\n]");
    }

    private static String entry(Path p) {
        StringBuilder j = new StringBuilder("  {\"file\": ").append(quote(p.toString()));
        try {
            ImageDetails d = Diskmorph.info(p);
            j.append(", \"format\": ").append(quote(d.format()))
                    .append(", \"virtual-size\": ").append(d.virtualSize())
                    .append(", \"actual-size\": ").append(d.actualSize())
                    .append(", \"backing-filename\": ").append(quote(d.backingFilename()));
            CheckResult c = Diskmorph.check(p, d.format(), Repair.NONE);
            j.append(", \"check\": ").append(!c.supported() ? quote("unsupported")
                    : quote(c.isClean() ? "clean" : c.corruptions() > 0 ? "corrupt" : c.leaks() > 0 ? "leaks"
                    : "failed"))
                    .append(", \"corruptions\": ").append(c.corruptions())
                    .append(", \"leaks\": ").append(c.leaks());
        } catch (DiskmorphException e) {
            j.append(", \"error\": ").append(quote(e.getMessage()))
                    .append(", \"exit-code\": ").append(e.exitCode());
        }
        return j.append('}').toString();
    }

    private static String quote(String s) {
        if (s == null) {
            return "null";
        }
        StringBuilder q = new StringBuilder("\"");
        for (char ch : s.toCharArray()) {
            switch (ch) {
                case '"' -> q.append("\\\"");
                case '\\' -> q.append("\\\\");
                default -> {
                    if (ch < 0x20) {
                        q.append(String.format("\\u%04x", (int) ch));
                    } else {
                        q.append(ch);
                    }
                }
            }
        }
        return q.append('"').toString();
    }
}
