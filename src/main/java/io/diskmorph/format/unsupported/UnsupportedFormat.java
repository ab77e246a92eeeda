package io.diskmorph.format.unsupported;

import io.diskmorph.image.CreateSpec;
import io.diskmorph.image.DiskImage;
import io.diskmorph.image.ImageFormat;
import io.diskmorph.image.OpenContext;
import io.diskmorph.image.UnsupportedFeatureException;
import io.diskmorph.storage.Storage;

import java.nio.ByteBuffer;
import java.util.List;

/**
 * A format qemu-img 7.2 probes that diskmorph has no driver for yet. It is
 * recognised with qemu's own probe rule and refused by name, so such a file
 * is never read, compared or converted as raw bytes ({@code -f raw} remains
 * the explicit way to do that).
 */
final class UnsupportedFormat implements ImageFormat {
    /** qemu's probe of one format: a score from the first 512 bytes (zero padded) and the file name. */
    @FunctionalInterface
    interface Probe {
        int score(ByteBuffer head512, String fileName);
    }

    private final String name;
    private final String title;
    private final Probe probe;

    UnsupportedFormat(String name, String title, Probe probe) {
        this.name = name;
        this.title = title;
        this.probe = probe;
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public boolean supported() {
        return false;
    }

    @Override
    public int probe(ByteBuffer head, long fileSize) {
        return probe(head, fileSize, null);
    }

    @Override
    public int probe(ByteBuffer head, long fileSize, String fileName) {
        return probe.score(head, fileName);
    }

    private UnsupportedFeatureException refusal(String file) {
        return new UnsupportedFeatureException((file != null ? file + ": " : "") + title
                + " images are not supported yet (format '" + name + "'; '-f raw' reads the file as raw bytes)");
    }

    @Override
    public DiskImage open(Storage storage, OpenContext context) throws UnsupportedFeatureException {
        throw refusal(storage.name());
    }

    @Override
    public DiskImage create(Storage storage, CreateSpec spec, OpenContext context) throws UnsupportedFeatureException {
        throw refusal(null);
    }

    @Override
    public List<OptionHelp> createOptions() {
        return List.of();
    }
}
