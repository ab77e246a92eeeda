package io.diskmorph.testing;

import java.io.IOException;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;

/** What of a file sits in the page cache, as util-linux's fincore(1) reports it (mincore over a mapping). */
public final class PageCache {
    private PageCache() {
    }

    /** Bytes of {@code file} resident in the page cache. */
    public static long residentBytes(Path file) throws IOException, InterruptedException {
        Process p = new ProcessBuilder("fincore", "--bytes", "--noheadings", "--output", "RES", file.toString())
                .redirectError(ProcessBuilder.Redirect.INHERIT).start();
        try {
            String out = new String(p.getInputStream().readAllBytes()).strip();
            if (!p.waitFor(30, TimeUnit.SECONDS) || p.exitValue() != 0 || !out.matches("\\d+")) {
                throw new AssertionError("fincore " + file + ": " + out);
            }
            return Long.parseLong(out);
        } finally {
            p.destroy();
        }
    }
}
