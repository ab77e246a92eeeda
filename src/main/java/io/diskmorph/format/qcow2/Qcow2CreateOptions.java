package io.diskmorph.format.qcow2;

import io.diskmorph.image.CreateSpec;
import io.diskmorph.image.FormatOptions;
import io.diskmorph.image.InvalidRequestException;
import io.diskmorph.image.LayoutTarget;

import java.nio.charset.StandardCharsets;

/**
 * Validated qcow2 create options (-o, names as qemu-img spells them), with
 * qemu's rules for combinations (block/qcow2.c qcow2_co_create).
 */
record Qcow2CreateOptions(int version, int clusterBits, int refcountOrder, boolean lazyRefcounts,
                          boolean extendedL2, int compressionType, String backingFile, String backingFormat,
                          boolean preallocateMetadata) {
    static final long DEFAULT_CLUSTER_SIZE = 64 * 1024;
    static final long MIN_CLUSTER_SIZE = 512;
    static final long MAX_CLUSTER_SIZE = 2L << 20;

    static Qcow2CreateOptions parse(CreateSpec spec, LayoutTarget.TargetDefaults defaults)
            throws InvalidRequestException {
        FormatOptions o = new FormatOptions(Qcow2Format.NAME, spec.options());
        // a qcow2 source's own options are the defaults of a same-format conversion, as far as they still
        // fit what the user changed (a v2 target drops v3-only features; refcount_bits falls back to 16)
        String compat = o.string("compat", inherited(defaults, "compat", "1.1"));
        int version = switch (compat) {
            case "0.10", "v2" -> 2;
            case "1.1", "v3" -> 3;
            default -> throw new InvalidRequestException("qcow2 option compat: '" + compat
                    + "' is not 0.10 or 1.1");
        };
        long clusterSize = o.size("cluster_size", defaultClusterSize(defaults));
        if (clusterSize < MIN_CLUSTER_SIZE || clusterSize > MAX_CLUSTER_SIZE || Long.bitCount(clusterSize) != 1) {
            throw new InvalidRequestException("qcow2 option cluster_size: must be a power of two between 512 and "
                    + "2M, not " + clusterSize);
        }
        long refcountBits = o.number("refcount_bits",
                version == 3 ? Long.parseLong(inherited(defaults, "refcount_bits", "16")) : 16);
        if (refcountBits < 1 || refcountBits > 64 || Long.bitCount(refcountBits) != 1) {
            throw new InvalidRequestException("qcow2 option refcount_bits: must be a power of two between 1 and "
                    + "64, not " + refcountBits);
        }
        if (version == 2 && refcountBits != 16) {
            throw new InvalidRequestException("qcow2 option refcount_bits: compat=0.10 only supports 16-bit "
                    + "refcounts (use compat=1.1)");
        }
        boolean lazy = o.bool("lazy_refcounts", version == 3
                && Boolean.parseBoolean(inherited(defaults, "lazy_refcounts", "false")));
        if (lazy && version == 2) {
            throw new InvalidRequestException("qcow2 option lazy_refcounts: needs compat=1.1");
        }
        boolean extendedL2 = o.bool("extended_l2", version == 3 && clusterSize >= 16 * 1024
                && Boolean.parseBoolean(inherited(defaults, "extended_l2", "false")));
        if (extendedL2 && version == 2) {
            throw new InvalidRequestException("qcow2 option extended_l2: needs compat=1.1");
        }
        if (extendedL2 && clusterSize < 16 * 1024) {
            throw new InvalidRequestException("qcow2 option extended_l2: needs cluster_size of at least 16K, not "
                    + clusterSize);
        }
        String ct = o.string("compression_type", version == 3 ? inherited(defaults, "compression_type", "zlib")
                : "zlib");
        int compression = switch (ct) {
            case "zlib" -> Qcow2Header.COMPRESSION_ZLIB;
            case "zstd" -> Qcow2Header.COMPRESSION_ZSTD;
            default -> throw new InvalidRequestException("qcow2 option compression_type: '" + ct
                    + "' is not zlib or zstd");
        };
        if (compression != Qcow2Header.COMPRESSION_ZLIB && version == 2) {
            throw new InvalidRequestException("qcow2 option compression_type: " + ct + " needs compat=1.1");
        }
        String optBacking = o.string("backing_file", null);
        String optBackingFmt = o.string("backing_fmt", null);
        String backing = spec.backingFile() != null ? spec.backingFile() : optBacking;
        String backingFmt = spec.backingFormat() != null ? spec.backingFormat() : optBackingFmt;
        String prealloc = o.string("preallocation", "off");
        if (!prealloc.equals("off") && !prealloc.equals("metadata")) {
            throw new InvalidRequestException("qcow2 option preallocation: '" + prealloc
                    + "' is not supported (off or metadata)");
        }
        o.rejectUnknown();
        if (backingFmt != null && backing == null) {
            throw new InvalidRequestException("qcow2 option backing_fmt: needs a backing file");
        }
        if (backing != null && (backing.isEmpty()
                || backing.getBytes(StandardCharsets.UTF_8).length > Qcow2Header.MAX_BACKING_NAME)) {
            throw new InvalidRequestException("qcow2 option backing_file: name must be 1 to "
                    + Qcow2Header.MAX_BACKING_NAME + " bytes");
        }
        if (backingFmt != null && (backingFmt.isEmpty()
                || backingFmt.getBytes(StandardCharsets.UTF_8).length > Qcow2Header.MAX_BACKING_FORMAT)) {
            throw new InvalidRequestException("qcow2 option backing_fmt: '" + backingFmt + "' is not a format name");
        }
        return new Qcow2CreateOptions(version, Long.numberOfTrailingZeros(clusterSize),
                Long.numberOfTrailingZeros(refcountBits), lazy, extendedL2, compression, backing, backingFmt,
                prealloc.equals("metadata"));
    }

    private static String inherited(LayoutTarget.TargetDefaults defaults, String name, String fallback) {
        String v = defaults.sourceOption(name);
        return v != null ? v : fallback;
    }

    /** The conversion source's cluster size when qcow2 can use it (capped at 2 MiB), else 64 KiB. */
    private static long defaultClusterSize(LayoutTarget.TargetDefaults defaults) {
        long c = defaults.clusterSize();
        if (c <= 0 || Long.bitCount(c) != 1 || c < MIN_CLUSTER_SIZE) {
            return DEFAULT_CLUSTER_SIZE;
        }
        return Math.min(c, MAX_CLUSTER_SIZE);
    }

    long clusterSize() {
        return 1L << clusterBits;
    }
}
