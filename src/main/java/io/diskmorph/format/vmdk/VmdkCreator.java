package io.diskmorph.format.vmdk;

import io.diskmorph.image.CreateSpec;
import io.diskmorph.image.FlatDescriptorFormat;
import io.diskmorph.image.DiskImage;
import io.diskmorph.image.FormatOptions;
import io.diskmorph.image.Images;
import io.diskmorph.image.InvalidRequestException;
import io.diskmorph.image.OpenContext;
import io.diskmorph.image.OpenOptions;
import io.diskmorph.image.UnsupportedFeatureException;
import io.diskmorph.storage.FileStorage;
import io.diskmorph.storage.LockMode;
import io.diskmorph.storage.Storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.ThreadLocalRandom;

/**
 * {@code create} as qemu-img 7.2 does it (block/vmdk.c, vmdk_co_do_create
 * and vmdk_init_extent), byte for byte where the content is not random
 * (the CID): the same options, the same descriptor text, and sparse
 * extents with qemu's layout (header, embedded descriptor at sector 1 of 20
 * sectors, redundant directory and all its grain tables from sector 21,
 * then the directory and its tables, grains from the next 64 KiB boundary;
 * 64 KiB grains, 512-entry tables). Split subformats put 2 GiB in each
 * extent file, named NAME-s001.vmdk / NAME-f001.vmdk beside the descriptor,
 * monolithicFlat NAME-flat.vmdk. streamOptimized images are written by
 * {@link StreamOptimizedImage}.
 */
final class VmdkCreator {
    static final String[] SUBFORMATS = {"monolithicSparse", "monolithicFlat", "twoGbMaxExtentSparse",
            "twoGbMaxExtentFlat", "streamOptimized"};
    private static final String[] ADAPTERS = {"ide", "buslogic", "lsilogic", "legacyESX"};
    static final long SPLIT_BYTES = 0x80000000L;
    static final int GRAIN_SECTORS = 128;
    static final int GT_ENTRIES = 512;
    static final int DESCRIPTOR_SECTOR = 1;
    static final int DESCRIPTOR_SECTORS = 20;

    /** The options, judged before any file is touched. */
    record Options(long size, String subformat, String adapter, String hwVersion, String toolsVersion,
                   boolean zeroedGrain, String backingFile) {
        boolean flat() {
            return subformat.equals("monolithicFlat") || subformat.equals("twoGbMaxExtentFlat");
        }

        boolean split() {
            return subformat.startsWith("twoGb");
        }

        boolean stream() {
            return subformat.equals("streamOptimized");
        }
    }

    private VmdkCreator() {
    }

    static Options options(CreateSpec spec) throws IOException {
        FormatOptions o = new FormatOptions(VmdkFormat.NAME, spec.options());
        String subformat = o.string("subformat", "monolithicSparse");
        String adapter = o.string("adapter_type", "ide");
        String hw = o.string("hwversion", "undefined");
        String tools = o.string("toolsversion", "2147483647");
        boolean compat6 = o.bool("compat6", false);
        boolean zeroed = o.bool("zeroed_grain", false);
        o.rejectUnknown();
        if (!List.of(SUBFORMATS).contains(subformat)) {
            throw new InvalidRequestException("parameter 'subformat' does not accept value '" + subformat
                    + "' (one of " + String.join(", ", SUBFORMATS) + ")");
        }
        if (!List.of(ADAPTERS).contains(adapter)) {
            throw new InvalidRequestException("parameter 'adapter_type' does not accept value '" + adapter
                    + "' (one of " + String.join(", ", ADAPTERS) + ")");
        }
        if (hw.equals("undefined")) {
            hw = null;
        }
        if (compat6) {
            if (hw != null) {
                throw new InvalidRequestException("compat6 cannot be enabled with hwversion set");
            }
            hw = "6";
        }
        if (hw == null) {
            hw = "4";
        }
        checkDescriptorValue("hwversion", hw);
        checkDescriptorValue("toolsversion", tools);
        String backing = spec.backingFile();
        if (spec.backingFormat() != null && !spec.backingFormat().equals(VmdkFormat.NAME)) {
            throw new InvalidRequestException("backing_file must be a vmdk image (backing_fmt "
                    + spec.backingFormat() + ")");
        }
        long size = Math.addExact(spec.virtualSize(), 511) & ~511L;
        if (size == 0) {
            // a sparse header of capacity 0 says "the descriptor names the extents": qemu-img creates such a
            // file and then cannot open it
            throw new UnsupportedFeatureException("a VMDK disk of 0 bytes cannot be read back (its header would "
                    + "name no capacity); give it a size");
        }
        Options opts = new Options(size, subformat, adapter, hw, tools, zeroed, backing);
        if (opts.flat() && backing != null) {
            throw new UnsupportedFeatureException("Flat image can't have backing file");
        }
        if (opts.flat() && zeroed) {
            throw new UnsupportedFeatureException("Flat image can't enable zeroed grain");
        }
        return opts;
    }

    /** A value the descriptor quotes: printable, no quote, bounded. */
    private static void checkDescriptorValue(String option, String value) throws InvalidRequestException {
        if (value.length() > 200 || value.chars().anyMatch(c -> c < 0x20 || c == '"' || c > 0x7e)) {
            throw new InvalidRequestException("parameter '" + option + "': printable ASCII without quotes, at most "
                    + "200 characters");
        }
    }

    /** Creates the image on {@code storage} (named by {@code context.path()}) and opens it for writing. */
    static DiskImage create(VmdkFormat format, Storage storage, CreateSpec spec, OpenContext context)
            throws IOException {
        Options o = options(spec);
        long parentCid = Descriptor.NO_PARENT_CID;
        if (o.backingFile() != null) {
            parentCid = parentCid(context, o.backingFile());
        }
        long cid = ThreadLocalRandom.current().nextLong(1L << 32);
        if (o.stream()) {
            String text = descriptor(o, cid, parentCid, List.of("RW " + o.size() / 512 + " SPARSE \""
                    + baseName(storage, context) + "\""));
            return new StreamOptimizedImage(format, storage, context, o, text.getBytes(StandardCharsets.US_ASCII));
        }
        List<String> lines = new ArrayList<>();
        if (!o.split() && !o.flat()) {
            lines.add("RW " + o.size() / 512 + " SPARSE \"" + baseName(storage, context) + "\"");
            String text = descriptor(o, cid, parentCid, lines);
            writeSparseExtent(storage, o.size(), o.zeroedGrain(), text.getBytes(StandardCharsets.US_ASCII));
        } else {
            if (context.path() == null) {
                throw new UnsupportedFeatureException("VMDK subformat " + o.subformat() + " keeps its data in extent "
                        + "files beside the descriptor, and this image has no path to name them by");
            }
            String[] nameParts = splitName(context.path().getFileName().toString());
            long extentBytes = o.split() ? SPLIT_BYTES : o.size();
            // a copy writes the descriptor under a temporary name and renames it when complete; the extent
            // files it names cannot wait for that, so they must not replace files of an image that exists
            boolean underTemporaryName = !Path.of(storage.name()).getFileName().equals(context.path().getFileName());
            List<Path> created = new ArrayList<>();
            try {
                int index = 1;
                for (long done = 0; done < o.size(); done += extentBytes, index++) {
                    long bytes = Math.min(extentBytes, o.size() - done);
                    String name = o.split()
                            ? String.format(Locale.ROOT, "%s-%c%03d%s", nameParts[0], o.flat() ? 'f' : 's', index,
                            nameParts[1])
                            : nameParts[0] + "-flat" + nameParts[1];
                    Path p = context.path().resolveSibling(name);
                    if (underTemporaryName && java.nio.file.Files.exists(p, java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
                        throw new UnsupportedFeatureException("extent file " + p + " exists (an image there would "
                                + "lose its data before the copy is complete); remove it or choose another name");
                    }
                    try (FileStorage f = FileStorage.create(p, LockMode.EXCLUSIVE)) {
                        created.add(p);
                        if (o.flat()) {
                            f.truncate(bytes);
                        } else {
                            writeSparseExtent(f, bytes, o.zeroedGrain(), null);
                        }
                        f.sync();
                    }
                    lines.add(o.flat() ? "RW " + bytes / 512 + " FLAT \"" + name + "\" 0"
                            : "RW " + bytes / 512 + " SPARSE \"" + name + "\"");
                }
            } catch (IOException | RuntimeException e) {
                for (Path p : created) {
                    java.nio.file.Files.deleteIfExists(p);
                }
                throw e;
            }
            byte[] text = descriptor(o, cid, parentCid, lines).getBytes(StandardCharsets.US_ASCII);
            storage.truncate(0);
            storage.write(ByteBuffer.wrap(text), 0);
        }
        storage.sync();
        return VmdkImage.open(format, storage, context.withReadOnly(false));
    }

    /** The parent's CID (qemu reads it at create; the parent must be a VMDK). */
    private static long parentCid(OpenContext context, String backing) throws IOException {
        Path p = Path.of(Images.fullBackingFilename(context.path(), backing));
        try (DiskImage parent = Images.open(p, OpenOptions.forReading().withFollowBacking(false))) {
            if (!(parent instanceof VmdkImage v)) {
                throw new InvalidRequestException("Invalid backing file format: " + parent.format().name()
                        + ". Must be vmdk");
            }
            return v.cid();
        }
    }

    /** qemu's vmdk_co_do_create descriptor text. */
    static String descriptor(Options o, long cid, long parentCid, List<String> extentLines) {
        int heads = o.adapter().equals("ide") ? 16 : 255;
        StringBuilder b = new StringBuilder();
        b.append("# Disk DescriptorFile\nversion=1\n");
        b.append("CID=").append(Long.toHexString(cid)).append('\n');
        b.append("parentCID=").append(Long.toHexString(parentCid)).append('\n');
        b.append("createType=\"").append(o.subformat()).append("\"\n");
        if (o.backingFile() != null) {
            b.append("parentFileNameHint=\"").append(o.backingFile()).append('"');
        }
        b.append("\n# Extent description\n");
        for (String l : extentLines) {
            b.append(l).append('\n');
        }
        b.append("\n# The Disk Data Base\n#DDB\n\n");
        b.append("ddb.virtualHWVersion = \"").append(o.hwVersion()).append("\"\n");
        b.append("ddb.geometry.cylinders = \"").append(o.size() / (63L * heads * 512)).append("\"\n");
        b.append("ddb.geometry.heads = \"").append(heads).append("\"\n");
        b.append("ddb.geometry.sectors = \"63\"\n");
        b.append("ddb.adapterType = \"").append(o.adapter()).append("\"\n");
        b.append("ddb.toolsVersion = \"").append(o.toolsVersion()).append("\"\n");
        return b.toString();
    }

    /** Sizes of qemu's sparse extent layout, in sectors. */
    record SparseLayout(long capacitySectors, long gtCount, long gdSectors, long rgdSector, long gdSector,
                        long grainSector) {
        static SparseLayout of(long bytes) {
            long sectors = bytes / 512;
            long grains = Math.ceilDiv(sectors, GRAIN_SECTORS);
            long gtSectors = GT_ENTRIES * 4 / 512;
            long gtCount = Math.ceilDiv(grains, GT_ENTRIES);
            long gdSectors = Math.ceilDiv(gtCount * 4, 512);
            long rgd = DESCRIPTOR_SECTOR + DESCRIPTOR_SECTORS;
            long gd = rgd + gdSectors + gtSectors * gtCount;
            long grain = Math.ceilDiv(gd + gdSectors + gtSectors * gtCount, GRAIN_SECTORS) * GRAIN_SECTORS;
            return new SparseLayout(sectors, gtCount, gdSectors, rgd, gd, grain);
        }
    }

    /** The hosted sparse header (version, flags, the layout's offsets), 512 bytes. */
    static ByteBuffer header(int version, int flags, long capacitySectors, long descriptorSector,
                             long descriptorSectors, long rgdSector, long gdSector, long grainSector,
                             int compression) {
        ByteBuffer h = ByteBuffer.allocate(512).order(ByteOrder.LITTLE_ENDIAN);
        h.order(ByteOrder.BIG_ENDIAN).putInt(0, SparseHeader.MAGIC_KDMV).order(ByteOrder.LITTLE_ENDIAN);
        h.putInt(4, version);
        h.putInt(8, flags);
        h.putLong(12, capacitySectors);
        h.putLong(20, GRAIN_SECTORS);
        h.putLong(28, descriptorSector);
        h.putLong(36, descriptorSectors);
        h.putInt(44, GT_ENTRIES);
        h.putLong(48, rgdSector);
        h.putLong(56, gdSector);
        h.putLong(64, grainSector);
        // byte 72 is qemu's filler; then the newline detection bytes
        h.put(73, (byte) '\n').put(74, (byte) ' ').put(75, (byte) '\r').put(76, (byte) '\n');
        h.putShort(77, (short) compression);
        return h;
    }

    /** qemu's vmdk_init_extent for a sparse extent: header, descriptor (or none), both directories; tables zero. */
    private static void writeSparseExtent(Storage file, long bytes, boolean zeroedGrain, byte[] descriptor)
            throws IOException {
        SparseLayout l = SparseLayout.of(bytes);
        if (descriptor != null && descriptor.length > DESCRIPTOR_SECTORS * 512) {
            throw new InvalidRequestException("the descriptor (" + descriptor.length + " bytes) does not fit the "
                    + DESCRIPTOR_SECTORS * 512 + " bytes a sparse VMDK keeps for it");
        }
        int flags = SparseHeader.FLAG_REDUNDANT_GD | 1 | (zeroedGrain ? SparseHeader.FLAG_ZEROED_GRAIN : 0);
        ByteBuffer h = header(zeroedGrain ? 2 : 1, flags, l.capacitySectors(), DESCRIPTOR_SECTOR,
                DESCRIPTOR_SECTORS, l.rgdSector(), l.gdSector(), l.grainSector(), 0);
        file.truncate(0);
        file.write(h, 0);
        file.truncate(l.grainSector() * 512);
        if (descriptor != null) {
            file.write(ByteBuffer.wrap(descriptor), DESCRIPTOR_SECTOR * 512L);
        }
        writeDirectory(file, l.rgdSector(), l);
        writeDirectory(file, l.gdSector(), l);
    }

    /** A directory at {@code sector} whose tables follow it, one after another (as qemu lays them out). */
    private static void writeDirectory(Storage file, long sector, SparseLayout l) throws IOException {
        long gtSectors = GT_ENTRIES * 4 / 512;
        int chunk = 1 << 16; // entries per write: bounded memory for a 2 TiB directory too
        ByteBuffer b = ByteBuffer.allocate(chunk * 4).order(ByteOrder.LITTLE_ENDIAN);
        for (long i = 0; i < l.gtCount(); i += chunk) {
            int n = (int) Math.min(chunk, l.gtCount() - i);
            b.clear();
            for (int k = 0; k < n; k++) {
                b.putInt(k * 4, (int) (sector + l.gdSectors() + (i + k) * gtSectors));
            }
            b.limit(n * 4);
            file.write(b, sector * 512 + i * 4);
        }
    }

    /**
     * An in-place conversion from raw: the descriptor of a monolithicFlat
     * disk (or a twoGbMaxExtentFlat one of a single extent) whose extent is
     * the raw file as it is, renamed as qemu names a new disk's extent
     * (NAME-flat.vmdk, NAME-f001.vmdk); null for the other subformats.
     */
    static FlatDescriptorFormat.FlatDescriptor flatDescriptor(String imageName, long virtualSize,
                                                            java.util.Map<String, String> options)
            throws IOException {
        Options o = options(new CreateSpec(virtualSize, options, null, null));
        boolean oneFlatExtent = o.subformat().equals("monolithicFlat")
                || o.subformat().equals("twoGbMaxExtentFlat") && o.size() <= SPLIT_BYTES;
        if (!oneFlatExtent) {
            return null;
        }
        if (virtualSize % 512 != 0) {
            throw new UnsupportedFeatureException("a raw file of " + virtualSize + " bytes is not a whole number of "
                    + "512-byte sectors, which a VMDK extent counts in (a copy rounds it up)");
        }
        String[] parts = splitName(imageName);
        String dataName = o.split() ? parts[0] + "-f001" + parts[1] : parts[0] + "-flat" + parts[1];
        long cid = ThreadLocalRandom.current().nextLong(1L << 32);
        String text = descriptor(o, cid, Descriptor.NO_PARENT_CID, List.of("RW " + o.size() / 512 + " FLAT \""
                + dataName + "\" 0"));
        return new FlatDescriptorFormat.FlatDescriptor(dataName, text.getBytes(StandardCharsets.US_ASCII));
    }

    /** The name the descriptor gives the image's own file (qemu: the base name). */
    private static String baseName(Storage storage, OpenContext context) {
        return context.path() != null ? context.path().getFileName().toString() : storage.name();
    }

    /** qemu's filename_decompose: the name before its last dot, and the rest (".vmdk"). */
    private static String[] splitName(String file) {
        int dot = file.lastIndexOf('.');
        return dot < 0 ? new String[]{file, ""} : new String[]{file.substring(0, dot), file.substring(dot)};
    }
}
