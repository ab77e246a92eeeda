package io.diskmorph.api;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * A new image for {@link Diskmorph#create(java.nio.file.Path, CreateRequest)}
 * (qemu-img create). Start from {@link #of(String, long)} or
 * {@link #overlay(String, String, String)}.
 *
 * @param format        the format name ("qcow2", "vmdk", "vhdx", "vpc", "vdi", ...)
 * @param virtualSize   the guest disk's size in bytes, or -1 to take the backing file's
 * @param options       the format's {@code -o} options in order ("cluster_size" to "65536", ...);
 *                      {@code diskmorph create -f FMT -o help} lists them
 * @param backingFile   the backing file name to store (relative names resolve against the image's
 *                      directory, as in QEMU), or null
 * @param backingFormat the backing file's format, required with a backing file (as in qemu-img 7.2)
 */
public record CreateRequest(String format, long virtualSize, Map<String, String> options, String backingFile,
                            String backingFormat) {

    /**
     * Copies the options, so the value cannot change.
     *
     * @param format        see the record
     * @param virtualSize   see the record
     * @param options       see the record
     * @param backingFile   see the record
     * @param backingFormat see the record
     */
    public CreateRequest {
        options = java.util.Collections.unmodifiableMap(new LinkedHashMap<>(options));
    }

    /**
     * An image of {@code format} and {@code virtualSize} bytes with default options.
     *
     * @param format      the format name
     * @param virtualSize the guest disk's size in bytes
     * @return the request
     */
    public static CreateRequest of(String format, long virtualSize) {
        return new CreateRequest(format, virtualSize, Map.of(), null, null);
    }

    /**
     * An overlay: an image of {@code format} whose reads fall through to a
     * backing file, of the backing file's size.
     *
     * @param format        the format name
     * @param backingFile   the backing file name to store
     * @param backingFormat the backing file's format
     * @return the request
     */
    public static CreateRequest overlay(String format, String backingFile, String backingFormat) {
        return new CreateRequest(format, -1, Map.of(), backingFile, backingFormat);
    }

    /**
     * The same request with one more option.
     *
     * @param key   the option's name
     * @param value its value
     * @return the new request
     */
    public CreateRequest withOption(String key, String value) {
        Map<String, String> o = new LinkedHashMap<>(options);
        o.put(key, value);
        return new CreateRequest(format, virtualSize, o, backingFile, backingFormat);
    }
}
