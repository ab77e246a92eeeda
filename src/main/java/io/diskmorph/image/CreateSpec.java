package io.diskmorph.image;

import java.util.Map;

/**
 * What to create: virtual size, format options (-o k=v, already split, keys
 * as qemu-img spells them), and an optional backing file (-b/-F, which may
 * also come as backing_file/backing_fmt options).
 */
public record CreateSpec(long virtualSize, Map<String, String> options, String backingFile, String backingFormat) {
    public CreateSpec {
        options = Map.copyOf(options);
    }

    public static CreateSpec of(long virtualSize) {
        return new CreateSpec(virtualSize, Map.of(), null, null);
    }
}
