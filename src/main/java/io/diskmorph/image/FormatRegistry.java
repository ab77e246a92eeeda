package io.diskmorph.image;

import io.diskmorph.storage.Storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.ServiceLoader;

/**
 * The format drivers on the class path (META-INF/services), and probing.
 * Raw is never probed positively: it is what a file is when no driver
 * recognises it.
 */
public final class FormatRegistry {
    /** Bytes read from the start of a file for probing. */
    public static final int PROBE_BYTES = 4096;

    private static final List<ImageFormat> FORMATS;

    static {
        List<ImageFormat> list = new ArrayList<>();
        ServiceLoader.load(ImageFormat.class, FormatRegistry.class.getClassLoader()).forEach(list::add);
        list.sort((a, b) -> a.name().compareTo(b.name()));
        FORMATS = Collections.unmodifiableList(list);
    }

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
        List<String> names = FORMATS.stream().map(ImageFormat::name).toList();
        throw new InvalidRequestException("unknown image format '" + name + "' (supported: "
                + String.join(", ", names) + ")");
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
