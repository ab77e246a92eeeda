package io.diskmorph.image;

import io.diskmorph.storage.Storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import io.diskmorph.format.qcow.QcowFormat;
import io.diskmorph.format.parallels.ParallelsFormat;
import io.diskmorph.format.qcow2.Qcow2Format;
import io.diskmorph.format.qed.QedFormat;
import io.diskmorph.format.raw.RawFormat;
import io.diskmorph.format.unsupported.UnsupportedFormats;
import io.diskmorph.format.vhdx.VhdxFormat;
import io.diskmorph.format.vdi.VdiFormat;
import io.diskmorph.format.vmdk.VmdkFormat;
import io.diskmorph.format.vpc.VpcFormat;

import java.util.ArrayList;
import java.util.List;

/**
 * The format drivers, and probing. Raw is never probed positively: it is
 * what a file is when no driver recognises it. Formats qemu-img probes that
 * have no driver yet are recognised all the same and refused by name
 * ({@link ImageFormat#supported()}), never read as raw.
 *
 * <p>The drivers are listed here rather than found through ServiceLoader,
 * whose scan of the jar's META-INF/services (a jar URL connection, the
 * module image, reflection) cost every command about 10 ms of start-up. A
 * new format adds its driver to this list; nothing else names formats.
 */
public final class FormatRegistry {
    /** Bytes read from the start of a file for probing. */
    public static final int PROBE_BYTES = 4096;
    /** qemu probes the first 512 bytes, zero padded when the file is shorter (BLOCK_PROBE_BUF_SIZE). */
    private static final int QEMU_PROBE_BYTES = 512;

    /** The format without metadata (initialised before the list that holds it). */
    private static final ImageFormat PLAIN = new RawFormat();
    /** The drivers, then the recognised formats without one. */
    private static final List<ImageFormat> FORMATS = all();

    private static List<ImageFormat> all() {
        List<ImageFormat> l = new ArrayList<>(List.of(new Qcow2Format(), new QedFormat(), new VmdkFormat(),
                new VhdxFormat(), new VdiFormat(), new ParallelsFormat(), new VpcFormat(), PLAIN));
        l.add(l.indexOf(PLAIN), new QcowFormat());
        l.addAll(UnsupportedFormats.all());
        return List.copyOf(l);
    }

    private FormatRegistry() {
    }

    /**
     * The format without metadata, guest offset = host offset: what a file
     * is when no driver recognises it (raw).
     */
    public static ImageFormat plainFormat() {
        return PLAIN;
    }

    /** Every format, with a driver or not ({@link ImageFormat#supported()}). */
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
            if (f.supported()) {
                names.append(names.isEmpty() ? "" : ", ").append(f.name());
            }
        }
        throw new InvalidRequestException("unknown image format '" + name + "' (supported: " + names + ")");
    }

    /**
     * Picks the format with the highest probe score; raw when none scores and
     * for an empty file (as qemu). The result may be a format without a
     * driver, whose open refuses by name.
     */
    public static ImageFormat probe(Storage storage) throws IOException {
        long size = storage.size();
        ByteBuffer head = storage.readBytes(0, (int) Math.min(PROBE_BYTES, size));
        return probe(head, size, storage.name());
    }

    public static ImageFormat probe(ByteBuffer head, long fileSize) throws InvalidRequestException {
        return probe(head, fileSize, null);
    }

    /** @param fileName the file's name as given, or null (qemu's dmg probe looks only at it) */
    public static ImageFormat probe(ByteBuffer head, long fileSize, String fileName) throws InvalidRequestException {
        if (fileSize == 0) {
            return PLAIN;
        }
        if (head.remaining() < QEMU_PROBE_BYTES) {
            // short files: the probes see zeros after the end, as qemu's do
            ByteBuffer padded = ByteBuffer.allocate(QEMU_PROBE_BYTES);
            padded.put(head.duplicate()).clear();
            head = padded;
        }
        ImageFormat best = null;
        int bestScore = 0;
        for (ImageFormat f : FORMATS) {
            int score;
            try {
                score = f.probe(head.slice().asReadOnlyBuffer(), fileSize, fileName);
            } catch (RuntimeException e) {
                score = 0; // a probe must not throw; treat as "not mine"
            }
            if (score > bestScore) {
                best = f;
                bestScore = score;
            }
        }
        return best != null ? best : PLAIN;
    }
}
