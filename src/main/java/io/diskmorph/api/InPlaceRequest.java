package io.diskmorph.api;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * An in-place conversion for {@link Diskmorph#plan(java.nio.file.Path, InPlaceRequest)} and
 * {@link Diskmorph#convertInPlace(java.nio.file.Path, InPlaceRequest, ProgressListener, Cancellation)}.
 * Start from {@link #to(String)}.
 *
 * @param sourceFormat  the image's format, or null to probe
 * @param targetFormat  the format to convert to ("qcow2", "qed", "raw", "vhdx", "vmdk", "vpc", "vdi", ...)
 * @param options       the target format's {@code -o} options that an in-place conversion takes
 *                      ({@code diskmorph convert -O FMT -o help} says which)
 * @param keepRollback  keep a rollback record so that {@link Diskmorph#rollback(java.nio.file.Path)}
 *                      restores the original byte for byte while the image is not written
 * @param followBacking open the image's backing files (false: --no-backing)
 */
public record InPlaceRequest(String sourceFormat, String targetFormat, Map<String, String> options,
                             boolean keepRollback, boolean followBacking) {

    /**
     * Copies the options, so the value cannot change.
     *
     * @param sourceFormat  see the record
     * @param targetFormat  see the record
     * @param options       see the record
     * @param keepRollback  see the record
     * @param followBacking see the record
     */
    public InPlaceRequest {
        options = java.util.Collections.unmodifiableMap(new LinkedHashMap<>(options));
    }

    /**
     * A conversion to {@code targetFormat} with its default options, the
     * source probed, no rollback record.
     *
     * @param targetFormat the format to convert to
     * @return the request
     */
    public static InPlaceRequest to(String targetFormat) {
        return new InPlaceRequest(null, targetFormat, Map.of(), false, true);
    }

    /**
     * The same request with the source's format named.
     *
     * @param format the image's format, or null to probe
     * @return the new request
     */
    public InPlaceRequest withSourceFormat(String format) {
        return new InPlaceRequest(format, targetFormat, options, keepRollback, followBacking);
    }

    /**
     * The same request with one more target option.
     *
     * @param key   the option's name ("cluster_size", "subformat", ...)
     * @param value its value
     * @return the new request
     */
    public InPlaceRequest withOption(String key, String value) {
        Map<String, String> o = new LinkedHashMap<>(options);
        o.put(key, value);
        return new InPlaceRequest(sourceFormat, targetFormat, o, keepRollback, followBacking);
    }

    /**
     * The same request keeping a rollback record or not.
     *
     * @param keep true to keep one
     * @return the new request
     */
    public InPlaceRequest withKeepRollback(boolean keep) {
        return new InPlaceRequest(sourceFormat, targetFormat, options, keep, followBacking);
    }

    /**
     * The same request opening the image's backing files or not.
     *
     * @param follow false reads through to zeros where the image has no data (the command's
     *               {@code --no-backing})
     * @return the new request
     */
    public InPlaceRequest withFollowBacking(boolean follow) {
        return new InPlaceRequest(sourceFormat, targetFormat, options, keepRollback, follow);
    }

    io.diskmorph.convert.InPlaceConverter.Request internal() {
        return new io.diskmorph.convert.InPlaceConverter.Request(sourceFormat, targetFormat, options, keepRollback);
    }
}
