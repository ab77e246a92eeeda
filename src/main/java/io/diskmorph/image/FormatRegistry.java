package io.diskmorph.image;

import io.diskmorph.storage.Storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import io.diskmorph.format.qcow2.Qcow2Format;
import io.diskmorph.format.qed.QedFormat;
import io.diskmorph.format.raw.RawFormat;

import java.util.List;

/**
 * The format drivers, and probing. Raw is never probed positively: it is
 * what a file is when no driver recognises it.
 *
 * <p>The drivers are listed here rather than found through ServiceLoader,
 * whose scan of the jar's META-INF/services (a jar URL connection, the
 * module image, reflection) cost every command about 10 ms of start-up. A
 * new format adds its driver to this list; nothing else names formats.
 */
public final class FormatRegistry {
    /** Bytes read from the start of a file for probing. */
    public static final int PROBE_BYTES = 4096;

    /** By name. */
    private static final List<ImageFormat> FORMATS = List.of(new Qcow2Format(), new QedFormat(), new RawFormat());

    private FormatRegistry() {
    }

    public static List<ImageFormat> formats() {
        return FORMATS;
    }

    /** The driver named {@code name}. */
    public static ImageFormat byName(String name) throws InvalidRequestException {
        for (ImageFormat f : FORMATS) {
            if (f.name().equals(name)) {
                return f;
            }
        }
        StringBuilder names = new StringBuilder();
        for (ImageFormat f : FORMATS) {
            names.append(names.isEmpty() ? "" : ", ").append(f.name());
        }
        throw new InvalidRequestException("unknown image format '" + name + "' (supported: " + names + ")");
    }

    /** Picks the driver with the highest probe score; raw when none scores. */
    public static ImageFormat probe(Storage storage) throws IOException {
        long size = storage.size();
        ByteBuffer head = storage.readBytes(0, (int) Math.min(PROBE_BYTES, size));
        return probe(head, size);
    }

    public static ImageFormat probe(ByteBuffer head, long fileSize) throws InvalidRequestException {
        ImageFormat best = null;
        int bestScore = 0;
        for (ImageFormat f : FORMATS) {
            int score;
            try {
                score = f.probe(head.asReadOnlyBuffer(), fileSize);
            } catch (RuntimeException e) {
                score = 0; // a probe must not throw; treat as "not mine"
            }
            if (score > bestScore) {
                best = f;
                bestScore = score;
            }
        }
        return best != null ? best : byName("raw");
    }
}
