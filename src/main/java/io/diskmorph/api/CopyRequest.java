package io.diskmorph.api;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * A copy conversion for
 * {@link Diskmorph#copy(java.nio.file.Path, java.nio.file.Path, CopyRequest, ProgressListener, Cancellation)}
 * (qemu-img convert). Start from {@link #to(String)}.
 *
 * @param sourceFormat  the source's format, or null to probe
 * @param targetFormat  the target's format
 * @param options       the target format's {@code -o} options, in order
 * @param compress      write compressed clusters ({@code -c}; qcow2, qcow and streamOptimized VMDK)
 * @param minSparse     bytes of zeros that become a hole in the target ({@code -S}; a multiple of 512
 *                      up to 16 MiB; 0 allocates every byte)
 * @param parallel      coroutines / workers ({@code -m}, 1 to 16)
 * @param outOfOrder    allow writes out of order ({@code -W})
 * @param backingFile   the target's backing file name ({@code -B}), or null
 * @param backingFormat the backing file's format ({@code -F}), required with a backing file
 * @param durable       sync the target before it appears under its name ({@code -t writeback});
 *                      false is qemu-img convert's default ({@code -t unsafe})
 */
public record CopyRequest(String sourceFormat, String targetFormat, Map<String, String> options, boolean compress,
                          long minSparse, int parallel, boolean outOfOrder, String backingFile,
                          String backingFormat, boolean durable) {

    /**
     * Copies the options, so the value cannot change.
     *
     * @param sourceFormat  see the record
     * @param targetFormat  see the record
     * @param options       see the record
     * @param compress      see the record
     * @param minSparse     see the record
     * @param parallel      see the record
     * @param outOfOrder    see the record
     * @param backingFile   see the record
     * @param backingFormat see the record
     * @param durable       see the record
     */
    public CopyRequest {
        options = java.util.Collections.unmodifiableMap(new LinkedHashMap<>(options));
    }

    /**
     * A copy into {@code targetFormat} with qemu-img convert's defaults
     * (probed source, 4 KiB sparse detection, 8 workers, in order) but one:
     * the target is synced before it appears under its name (qemu-img's and
     * the command's default, {@code -t unsafe}, leaves that to the OS; see
     * {@link #withDurable(boolean)}).
     *
     * @param targetFormat the target's format
     * @return the request
     */
    public static CopyRequest to(String targetFormat) {
        return new CopyRequest(null, targetFormat, Map.of(), false, 4096, 8, false, null, null, true);
    }

    /**
     * The same request with the source's format named.
     *
     * @param format the source's format, or null to probe
     * @return the new request
     */
    public CopyRequest withSourceFormat(String format) {
        return new CopyRequest(format, targetFormat, options, compress, minSparse, parallel, outOfOrder,
                backingFile, backingFormat, durable);
    }

    /**
     * The same request with one more target option.
     *
     * @param key   the option's name
     * @param value its value
     * @return the new request
     */
    public CopyRequest withOption(String key, String value) {
        Map<String, String> o = new LinkedHashMap<>(options);
        o.put(key, value);
        return new CopyRequest(sourceFormat, targetFormat, o, compress, minSparse, parallel, outOfOrder,
                backingFile, backingFormat, durable);
    }

    /**
     * The same request with compression on or off.
     *
     * @param on true to write compressed clusters
     * @return the new request
     */
    public CopyRequest withCompress(boolean on) {
        return new CopyRequest(sourceFormat, targetFormat, options, on, minSparse, parallel, outOfOrder,
                backingFile, backingFormat, durable);
    }

    /**
     * The same request with another sparse-detection size.
     *
     * @param bytes runs of zeros this long (a multiple of 512 up to 16 MiB) become holes; 0 allocates every byte
     * @return the new request
     */
    public CopyRequest withMinSparse(long bytes) {
        return new CopyRequest(sourceFormat, targetFormat, options, compress, bytes, parallel, outOfOrder,
                backingFile, backingFormat, durable);
    }

    /**
     * The same request with another number of workers.
     *
     * @param workers 1 to 16
     * @return the new request
     */
    public CopyRequest withParallel(int workers) {
        return new CopyRequest(sourceFormat, targetFormat, options, compress, minSparse, workers, outOfOrder,
                backingFile, backingFormat, durable);
    }

    /**
     * The same request allowing writes out of order or not.
     *
     * @param allowed true as qemu-img's {@code -W}
     * @return the new request
     */
    public CopyRequest withOutOfOrder(boolean allowed) {
        return new CopyRequest(sourceFormat, targetFormat, options, compress, minSparse, parallel, allowed,
                backingFile, backingFormat, durable);
    }

    /**
     * The same request with a backing file for the target: the copy then
     * holds only what differs from it ({@code -B}, {@code -F}).
     *
     * @param file   the backing file name to store, or null for none
     * @param format its format, required with a file
     * @return the new request
     */
    public CopyRequest withBacking(String file, String format) {
        return new CopyRequest(sourceFormat, targetFormat, options, compress, minSparse, parallel, outOfOrder,
                file, format, durable);
    }

    /**
     * The same request with or without the final sync.
     *
     * @param sync true to make the target durable before it appears
     * @return the new request
     */
    public CopyRequest withDurable(boolean sync) {
        return new CopyRequest(sourceFormat, targetFormat, options, compress, minSparse, parallel, outOfOrder,
                backingFile, backingFormat, sync);
    }
}
