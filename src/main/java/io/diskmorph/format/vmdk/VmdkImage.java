package io.diskmorph.format.vmdk;

import io.diskmorph.image.AbstractDiskImage;
import io.diskmorph.image.FlatDataImage;
import io.diskmorph.image.CheckReport;
import io.diskmorph.image.CorruptImageException;
import io.diskmorph.image.DiskImage;
import io.diskmorph.image.ImageFormat;
import io.diskmorph.image.ImageInfo;
import io.diskmorph.image.Images;
import io.diskmorph.image.InvalidRequestException;
import io.diskmorph.image.Mapping;
import io.diskmorph.image.OpenContext;
import io.diskmorph.image.RelocatableImage;
import io.diskmorph.image.RepairMode;
import io.diskmorph.image.UnsupportedFeatureException;
import io.diskmorph.storage.FileStorage;
import io.diskmorph.storage.LockMode;
import io.diskmorph.storage.Storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * An open VMDK disk, read only: its extents in guest order, answering
 * mapping and reads per extent (host offsets are offsets in the extent's own
 * file, which every data answer names), and the parent of a snapshot as the
 * backing image (parentFileNameHint, format vmdk, as qemu).
 */
final class VmdkImage extends AbstractDiskImage implements FlatDataImage, RelocatableImage,
        io.diskmorph.image.MetadataRegions {
    static final int SECTOR = 512;
    /** Grain tables (or directory pages) of one size class kept in memory, for all extents together. */
    static final long TABLE_CACHE_BYTES = 4L << 20;
    /** {@link #TABLE_CACHE_BYTES}; tests make it small to see tables evicted. */
    static long tableCacheBytes = TABLE_CACHE_BYTES;

    /** createTypes of descriptor files whose extents this driver reads: qemu 7.2's list and the other VMFS flat disks. */
    private static final Set<String> DESCRIPTOR_CREATE_TYPES = Set.of("monolithicFlat", "twoGbMaxExtentFlat",
            "twoGbMaxExtentSparse", "vmfs", "vmfsThin", "vmfsPreallocated", "vmfsEagerZeroedThick", "vmfsSparse",
            "seSparse");
    /** createTypes that name physical disks or partitions. */
    private static final Set<String> DEVICE_CREATE_TYPES = Set.of("fullDevice", "partitionedDevice", "vmfsRaw",
            "vmfsRDM", "vmfsRDMP", "vmfsRawDeviceMap", "vmfsPassthroughRawDeviceMap");

    private final VmdkFormat format;
    private final String createType;
    /** The descriptor's CID (a write of this open changes it). */
    private long cid;
    private final long parentCid;
    private final List<Extent> extents;
    /** The extent file names as the descriptor writes them (null for ZERO extents), in extent order; empty without a descriptor. */
    private List<String> extentNames = List.of();
    private final long[] extentStarts;
    private final long size;
    private final long clusterSize;
    /** Extent files opened for this image (the image's own file is not among them). */
    private final List<Storage> extentFiles;
    /** Files of flat extents: QEMU asks them for holes (BDRV_BLOCK_RECURSE), so map reports holes as zeros. */
    private final Set<Storage> flatFiles;
    private boolean parentChecked;
    /** The grain tables of every sparse extent (null without one). */
    private TableCache tables;
    /** Where the descriptor text lies in this image's own file, and the text (for the CID a write changes). */
    private long descriptorAt;
    private byte[] descriptorText;
    private Set<Extent> readOnlyLines = Set.of();
    /** qemu's cid_updated: the first write of an open gives the disk a new CID. */
    private boolean cidUpdated;

    private VmdkImage(VmdkFormat format, Storage storage, OpenContext context, String createType, long cid,
                      long parentCid, String parentHint, List<Extent> extents, List<Storage> extentFiles) {
        super(storage, context);
        this.format = format;
        this.createType = createType;
        this.cid = cid;
        this.parentCid = parentCid;
        this.extents = extents;
        this.extentFiles = extentFiles;
        this.extentStarts = new long[extents.size()];
        for (int i = 0; i < extents.size(); i++) {
            extentStarts[i] = extents.get(i).guestStart;
        }
        this.size = extents.isEmpty() ? 0 : extents.getLast().guestEnd();
        this.clusterSize = qemuClusterSize(extents);
        Set<Storage> flat = Collections.newSetFromMap(new IdentityHashMap<>());
        for (Extent e : extents) {
            if (e instanceof FlatExtent) {
                flat.add(e.file);
            }
        }
        this.flatFiles = flat;
        if (parentHint != null && !parentHint.isEmpty()) {
            this.backingName = parentHint;
            this.backingFmt = VmdkFormat.NAME; // qemu: a VMDK's parent is a VMDK
        }
    }

    // ---- opening --------------------------------------------------------------------------

    static VmdkImage open(VmdkFormat format, Storage storage, OpenContext context) throws IOException {
        String name = storage.name();
        long fileSize = storage.size();
        if (fileSize < 4) {
            throw new CorruptImageException("VMDK file", -1, name + ": file is too small to be a VMDK image ("
                    + fileSize + " bytes)");
        }
        ByteBuffer head = storage.readBytes(0, (int) Math.min(fileSize, SECTOR));
        int magic = head.order(ByteOrder.BIG_ENDIAN).getInt(0);
        TableCache tables = new TableCache(tableCacheBytes);
        if (magic == SparseHeader.MAGIC_COWD) {
            throw new UnsupportedFeatureException(name + ": an ESX sparse extent (COWD) on its own; open the "
                    + "descriptor file that names it (NAME.vmdk)");
        }
        if (magic == SparseHeader.MAGIC_KDMV && !SparseHeader.isWrappedDescriptor(head)) {
            return openMonolithicSparse(format, storage, context, tables);
        }
        long descriptorAt = 0;
        long descriptorBytes = fileSize;
        if (magic == SparseHeader.MAGIC_KDMV) {
            // a sparse header without capacity whose descriptor names the extents (qemu opens it so)
            descriptorAt = SparseHeader.wrappedDescriptorOffset(head);
            if (descriptorAt < 0 || descriptorAt >= fileSize) {
                throw new CorruptImageException("VMDK sparse extent header", 28, name
                        + ": the descriptor lies past the end of the file");
            }
            descriptorBytes = Math.min(fileSize - descriptorAt, Descriptor.MAX_BYTES);
        } else if (fileSize > Descriptor.MAX_BYTES) {
            throw new CorruptImageException("VMDK descriptor", -1, name + ": a descriptor file of " + fileSize
                    + " bytes (a VMDK descriptor is text under 1 MiB; is this a VMDK image?)");
        }
        byte[] text = storage.readBytes(descriptorAt, (int) descriptorBytes).array();
        Descriptor d = Descriptor.parse(text, text.length, name);
        VmdkImage image = openDescriptor(format, storage, context, d, tables);
        image.descriptorAt = descriptorAt;
        image.descriptorText = text;
        return image;
    }

    /** A sparse extent that is the whole image (monolithicSparse, streamOptimized), its descriptor embedded. */
    private static VmdkImage openMonolithicSparse(VmdkFormat format, Storage storage, OpenContext context,
                                                  TableCache tables) throws IOException {
        String name = storage.name();
        SparseHeader h = SparseHeader.read(storage, false, name);
        if (h.descriptorBytes() == 0) {
            throw new CorruptImageException("VMDK sparse extent header", 28, name + ": no embedded descriptor "
                    + "(CID and parent); open the descriptor file that names this extent");
        }
        long available = Math.max(0, Math.min(h.descriptorBytes(), storage.size() - h.descriptorOffset()));
        byte[] text = storage.readBytes(h.descriptorOffset(), (int) available).array();
        Descriptor d = Descriptor.parse(text, text.length, name);
        requireCids(d, name);
        // qemu names the type after the header, whatever the embedded descriptor says
        String createType = h.compressed() ? "streamOptimized" : "monolithicSparse";
        List<Extent> extents = List.of(new SparseExtent(0, "", storage, h, tables));
        VmdkImage image = new VmdkImage(format, storage, context, createType, d.cid, d.parentCid,
                d.parentFileNameHint, extents, List.of());
        image.descriptorAt = h.descriptorOffset();
        image.descriptorText = text;
        image.tables = tables;
        return image;
    }

    private static void requireCids(Descriptor d, String name) throws CorruptImageException {
        if (d.cid < 0 || d.parentCid < 0) {
            throw new CorruptImageException("VMDK descriptor", -1, name + ": no " + (d.cid < 0 ? "CID" : "parentCID")
                    + " line (qemu cannot open it either)");
        }
    }

    /** A descriptor file: its extents, each opened through the context (resolved and checked like backing files). */
    private static VmdkImage openDescriptor(VmdkFormat format, Storage storage, OpenContext context, Descriptor d,
                                            TableCache tables) throws IOException {
        String name = storage.name();
        if (d.createType == null) {
            throw new CorruptImageException("VMDK descriptor", -1, name + ": no createType: not a VMDK descriptor");
        }
        if (DEVICE_CREATE_TYPES.contains(d.createType)) {
            throw new UnsupportedFeatureException(name + ": VMDK createType '" + d.createType + "' maps a physical "
                    + "disk or partition; diskmorph does not open devices through a descriptor");
        }
        if (!DESCRIPTOR_CREATE_TYPES.contains(d.createType)) {
            throw new UnsupportedFeatureException(name + ": VMDK createType '"
                    + Descriptor.abbreviate(d.createType) + "' is not supported");
        }
        requireCids(d, name);
        if (d.extents.isEmpty()) {
            throw new CorruptImageException("VMDK descriptor", -1, name + ": no extent lines");
        }
        ExtentFiles files = new ExtentFiles(storage, context);
        List<Extent> extents = new ArrayList<>();
        List<String> names = new ArrayList<>();
        try {
            long guest = 0;
            for (Descriptor.ExtentLine line : d.extents) {
                String at = name + ": line " + line.line();
                if (line.access() == Descriptor.Access.NOACCESS) {
                    throw new UnsupportedFeatureException(at + ": a NOACCESS extent cannot be read (qemu 7.2 drops "
                            + "the line, which shifts every later extent)");
                }
                if (!Descriptor.isReadableType(line.type())) {
                    throw new UnsupportedFeatureException(at + ": extent type '" + Descriptor.abbreviate(line.type())
                            + "' is not supported" + (line.type().startsWith("VMFSR") ? " (a raw device mapping)"
                            : ""));
                }
                if (line.sectors() == 0) {
                    continue; // as qemu: an empty extent holds nothing
                }
                Extent e = switch (line.type()) {
                    case "ZERO" -> new ZeroExtent(guest, line.sectors() * SECTOR);
                    case "FLAT", "VMFS" -> {
                        long start = line.type().equals("FLAT") ? line.startSector() * SECTOR : 0;
                        long length = line.sectors() * SECTOR;
                        if (start > Long.MAX_VALUE - length) {
                            throw new CorruptImageException("VMDK descriptor", -1, at + ": the extent ends past "
                                    + "2^63 bytes of its file");
                        }
                        Storage f = files.open(line, false, start, length);
                        yield new FlatExtent(guest, length, line.type(), f, start);
                    }
                    default -> {
                        Storage f = files.open(line, true, 0, Long.MAX_VALUE);
                        if (SparseHeader.isWrappedDescriptor(f.readBytes(0, (int) Math.min(SECTOR, f.size())))) {
                            throw new UnsupportedFeatureException(at + ": the sparse extent " + f.name()
                                    + " holds another descriptor (nested descriptors are not supported)");
                        }
                        // the sparse header's capacity is the extent's size (qemu), not the line's
                        SparseHeader h = SparseHeader.read(f, line.type().equals("SESPARSE"), f.name());
                        yield new SparseExtent(guest, line.type(), f, h, tables);
                    }
                };
                if (line.access() == Descriptor.Access.RDONLY) {
                    files.readOnlyLines.add(e);
                }
                try {
                    guest = Math.addExact(guest, e.length);
                } catch (ArithmeticException x) {
                    throw new CorruptImageException("VMDK descriptor", -1, at + ": the disk grows past 2^63 bytes");
                }
                extents.add(e);
                names.add(line.fileName());
            }
            if (extents.isEmpty()) {
                throw new CorruptImageException("VMDK descriptor", -1, name + ": every extent is empty");
            }
            files.checkOverlaps();
            VmdkImage image = new VmdkImage(format, storage, context, d.createType, d.cid, d.parentCid,
                    d.parentFileNameHint, List.copyOf(extents), files.opened());
            image.tables = tables;
            image.readOnlyLines = files.readOnlyLines;
            image.extentNames = java.util.Collections.unmodifiableList(names);
            return image;
        } catch (IOException | RuntimeException e) {
            files.closeAll();
            throw e;
        }
    }

    /**
     * The extent files of one descriptor: each opened once (names that reach
     * the same file share it), never the descriptor itself, and no byte of a
     * file in two extents (a sparse file belongs to one extent; flat ranges
     * of one file must not overlap): a descriptor that loops or overlaps is
     * refused, not read twice.
     */
    private static final class ExtentFiles {
        private record Use(int line, boolean sparse, long start, long length) {
        }

        private final Storage descriptor;
        private final OpenContext context;
        private final Object descriptorKey;
        private final Map<Object, Storage> byKey = new LinkedHashMap<>();
        private final Map<Storage, List<Use>> uses = new IdentityHashMap<>();
        private final List<Storage> opened = new ArrayList<>();
        /** Extents the descriptor marks RDONLY: never written. */
        final Set<Extent> readOnlyLines = Collections.newSetFromMap(new IdentityHashMap<>());

        ExtentFiles(Storage descriptor, OpenContext context) {
            this.descriptor = descriptor;
            this.context = context;
            this.descriptorKey = context.path() == null ? null : fileKey(context.path());
        }

        Storage open(Descriptor.ExtentLine line, boolean sparse, long start, long length) throws IOException {
            String at = descriptor.name() + ": line " + line.line();
            boolean writable = !context.readOnly() && !context.forCheck();
            if (context.path() == null || context.extents() == null && !writable) {
                throw new UnsupportedFeatureException(at + ": the descriptor names extent file '"
                        + Descriptor.abbreviate(line.fileName()) + "', and extent files cannot be opened here "
                        + "(only a VMDK opened from its path reaches them)");
            }
            Path path = Images.extentPath(context.path(), line.fileName());
            Object key = fileKey(path);
            if (key != null && key.equals(descriptorKey)) {
                throw new CorruptImageException("VMDK descriptor", -1, at + ": extent file '"
                        + Descriptor.abbreviate(line.fileName()) + "' is the descriptor itself (a loop)");
            }
            if (key == null) {
                key = path.normalize(); // no identity to ask for (the open will say why): the name decides
            }
            Storage f = byKey.get(key);
            if (f == null) {
                // an image opened for writing writes its extents: opened read-write and locked like it
                f = writable ? openForWriting(path) : context.extents().open(context, line.fileName());
                opened.add(f);
                byKey.put(key, f);
            }
            uses.computeIfAbsent(f, k -> new ArrayList<>()).add(new Use(line.line(), sparse, start, length));
            return f;
        }

        private static Storage openForWriting(Path path) throws IOException {
            try {
                return FileStorage.open(path, false, LockMode.EXCLUSIVE);
            } catch (java.nio.file.NoSuchFileException e) {
                throw new java.nio.file.NoSuchFileException(path.toString(), null, "extent file not found");
            }
        }

        /** A sparse file in two extents, or overlapping flat ranges of one file, is refused. */
        void checkOverlaps() throws CorruptImageException {
            for (Map.Entry<Storage, List<Use>> e : uses.entrySet()) {
                List<Use> u = new ArrayList<>(e.getValue());
                if (u.size() < 2) {
                    continue;
                }
                u.sort((a, b) -> Long.compare(a.start, b.start));
                for (int i = 1; i < u.size(); i++) {
                    Use prev = u.get(i - 1);
                    Use cur = u.get(i);
                    if (prev.sparse || cur.sparse || cur.start < prev.start + prev.length) {
                        throw new CorruptImageException("VMDK descriptor", -1, descriptor.name() + ": lines "
                                + Math.min(prev.line, cur.line) + " and " + Math.max(prev.line, cur.line)
                                + " use the same bytes of " + e.getKey().name() + " (extents overlap)");
                    }
                }
            }
        }

        List<Storage> opened() {
            return List.copyOf(opened);
        }

        void closeAll() {
            for (Storage s : opened) {
                try {
                    s.close();
                } catch (IOException ignored) {
                    // the open failed already; that is the error to report
                }
            }
        }

        /** The file's identity (device and inode on Linux), so that links and other spellings meet; null if none. */
        private static Object fileKey(Path p) {
            try {
                return Files.readAttributes(p, BasicFileAttributes.class).fileKey();
            } catch (IOException | RuntimeException e) {
                return null; // missing: the open reports it
            }
        }
    }

    // ---- geometry -------------------------------------------------------------------------

    /**
     * qemu's vmdk_co_get_info: the first extent's grain size when every
     * extent is of its kind (flat or not, compressed or not, same grain),
     * none for flat disks or a mix.
     */
    private static long qemuClusterSize(List<Extent> extents) {
        return extentsOfOneKind(extents) && extents.getFirst() instanceof SparseExtent first ? first.grainBytes() : 0;
    }

    /** qemu's vmdk_extents_type_eq over all extents: all flat (ZERO counts as flat), or all sparse alike. */
    private static boolean extentsOfOneKind(List<Extent> extents) {
        Extent first = extents.getFirst();
        for (Extent e : extents) {
            boolean sparse = e instanceof SparseExtent;
            if (sparse != first instanceof SparseExtent) {
                return false;
            }
            if (sparse && (((SparseExtent) e).header.compressed() != ((SparseExtent) first).header.compressed()
                    || e.grainBytes() != first.grainBytes())) {
                return false;
            }
        }
        return true;
    }

    @Override
    public ImageFormat format() {
        return format;
    }

    @Override
    public long virtualSize() {
        return size;
    }

    @Override
    public long clusterSize() {
        return clusterSize;
    }

    /** Opened read-only, for check (whose extents are read-only), or on a read-only file. */
    @Override
    public boolean isReadOnly() {
        return context.readOnly() || context.forCheck() || storage.isReadOnly();
    }

    /**
     * A monolithic sparse file (monolithicSparse, streamOptimized) holds its
     * header, descriptor, tables and grains itself and can be converted in
     * place; a descriptor's data lives in its extent files, which the
     * conversion would have to merge into one: not yet. A snapshot whose
     * parent changed since (its CID is not the parentCID) is refused as a
     * read through it would be: the target would read the changed parent.
     */
    @Override
    public String notInPlaceSource() throws IOException {
        if (extents.size() == 1 && extents.getFirst().file == storage) {
            checkParent();
            return null;
        }
        String copyWorks = " (a copy works: 'diskmorph convert -O qcow2 SRC DST')";
        if (extents.size() > 1) {
            return "a VMDK descriptor of " + extents.size() + " extents (createType " + createType + "): converting "
                    + "multi-extent VMDK images in place is not supported yet" + copyWorks;
        }
        Extent only = extents.getFirst();
        return "a VMDK descriptor (createType " + createType + ") whose data lives in "
                + (only.file != null ? "extent file " + only.file.name() : "a ZERO extent") + ": converting "
                + "descriptor-based VMDK images with extent files in place is not supported yet" + copyWorks;
    }

    long cid() {
        return cid;
    }

    /**
     * A descriptor over one FLAT or VMFS extent that starts at offset 0 of
     * its file: that file is the disk as raw (what ESXi's NAME-flat.vmdk,
     * qemu's monolithicFlat and a one-extent twoGbMaxExtentFlat hold).
     */
    @Override
    public String flatDataFile() throws IOException {
        if (extents.size() != 1 || extentNames.isEmpty() || !(extents.getFirst() instanceof FlatExtent flat)) {
            return null;
        }
        if (parentCid != Descriptor.NO_PARENT_CID) {
            throw new UnsupportedFeatureException(storage.name() + ": a VMDK snapshot (parentCID "
                    + Long.toHexString(parentCid) + "): its parent's data would be lost by a conversion of the "
                    + "flat extent alone (a copy works: 'diskmorph convert -O raw SRC DST')");
        }
        if (flat.fileStart != 0) {
            throw new UnsupportedFeatureException(storage.name() + ": the flat extent starts at byte "
                    + flat.fileStart + " of " + extentNames.getFirst() + ": its data would have to move, which "
                    + "in-place conversion does not do for VMDK flat extents (a copy works)");
        }
        return extentNames.getFirst();
    }

    /**
     * The create options this image has (for an in-place conversion to VMDK:
     * options it already has change nothing, and the ones not given follow
     * it): its subformat, and for a single sparse file whether it has zeroed
     * grains.
     */
    @Override
    public Map<String, String> creationOptions() {
        Map<String, String> o = new LinkedHashMap<>();
        o.put("subformat", createType);
        if (extents.size() == 1 && extents.getFirst() instanceof SparseExtent s
                && s.header.kind() == SparseHeader.Kind.HOSTED) {
            o.put("zeroed_grain", s.header.zeroedGrains() ? "on" : "off");
        }
        return o;
    }

    List<Extent> extents() {
        return extents;
    }

    Extent extentAt(long guestOffset) {
        int i = java.util.Arrays.binarySearch(extentStarts, guestOffset);
        return extents.get(i >= 0 ? i : -i - 2);
    }

    // ---- mapping and reads ----------------------------------------------------------------

    @Override
    public Mapping mapping(long guestOffset, long maxLength) throws IOException {
        if (guestOffset < 0 || guestOffset >= size || maxLength <= 0) {
            throw new InvalidRequestException(String.format("mapping request at 0x%x+0x%x is outside the virtual "
                    + "disk (size %d)", guestOffset, maxLength, size));
        }
        Extent e = extentAt(guestOffset);
        long offset = guestOffset - e.guestStart;
        return e.mapping(offset, Math.min(maxLength, e.length - offset));
    }

    @Override
    public long blockStatusLimit(long guestOffset) {
        Extent e = extentAt(guestOffset);
        return e.guestStart + e.statusEnd(guestOffset - e.guestStart);
    }

    @Override
    public boolean mapReportsHostHolesAsZero(Mapping.Data data) {
        return flatFiles.contains(dataStorage(data));
    }

    @Override
    public void read(ByteBuffer dst, long guestOffset) throws IOException {
        checkRange(guestOffset, dst.remaining());
        long pos = guestOffset;
        while (dst.hasRemaining()) {
            Extent e = extentAt(pos);
            long offset = pos - e.guestStart;
            Mapping m = e.mapping(offset, Math.min(dst.remaining(), e.length - offset));
            int n = (int) m.length();
            ByteBuffer part = dst.slice(dst.position(), n);
            // instanceof tests, not a pattern switch: its bootstrap spins a class at every start
            if (m instanceof Mapping.Data d) {
                d.file().read(part, d.hostOffset());
            } else if (m instanceof Mapping.Zero) {
                fillZero(part);
            } else if (m instanceof Mapping.Unallocated) {
                readBacking(part, pos);
            } else if (m instanceof Mapping.Compressed c) {
                ((SparseExtent) e).readCompressed(c.hostOffset(), c.offsetInCluster(), part);
            }
            dst.position(dst.position() + n);
            pos += n;
        }
    }

    /**
     * qemu's vmdk_is_cid_valid: a snapshot reads through its parent only
     * while the parent's CID is the parentCID the snapshot recorded; a
     * parent written since would give the guest a mix of two disks.
     */
    @Override
    protected void readBacking(ByteBuffer part, long guestOffset) throws IOException {
        checkParent();
        super.readBacking(part, guestOffset);
    }

    @Override
    public void checkBackingReadable() throws IOException {
        checkParent();
    }

    /** The parent CID test of {@link #readBacking}, once; nothing without a parent or with --no-backing. */
    private void checkParent() throws IOException {
        DiskImage parent = backing();
        if (parent != null && !parentChecked) {
            if (!(parent instanceof VmdkImage v) || v.cid != parentCid) {
                throw new CorruptImageException("VMDK parent CID", -1, String.format("%s: parentCID %08x does not "
                        + "match the CID of its parent %s (%s): the parent changed after this snapshot was taken",
                        storage.name(), parentCid, parent.storage().name(), parent instanceof VmdkImage p
                                ? String.format("%08x", p.cid) : "not a VMDK"));
            }
            parentChecked = true;
        }
    }

    // ---- writes ---------------------------------------------------------------------------

    /**
     * Guest writes, as qemu's vmdk_pwritev: flat extents in place; sparse
     * extents in place where the grain is allocated, else a new grain at the
     * end of the extent file holding the whole grain (the rest from the
     * parent, or zeros), then its grain table entry and the redundant
     * table's, written back after the grain is durable. The first write of an
     * open gives the disk a new CID first (synced), so that snapshots of it
     * stop reading through it, as qemu does. What cannot be written (a ZERO
     * or RDONLY extent, a compressed, ESX or seSparse extent, a version 3
     * header) is refused before anything is written.
     */
    @Override
    public void write(ByteBuffer src, long guestOffset) throws IOException {
        checkWritable();
        checkRange(guestOffset, src.remaining());
        if (!src.hasRemaining()) {
            return;
        }
        checkExtentsWritable(guestOffset, src.remaining());
        updateCid();
        long pos = guestOffset;
        ByteBuffer rest = src.slice();
        while (rest.hasRemaining()) {
            Extent e = extentAt(pos);
            long offset = pos - e.guestStart;
            int n = (int) Math.min(rest.remaining(), e.length - offset);
            ByteBuffer part = rest.slice(rest.position(), n);
            if (e instanceof FlatExtent f) {
                tables.tracker(f.file).write(part, f.fileStart + offset);
            } else {
                ((SparseExtent) e).write(part, offset, this);
            }
            rest.position(rest.position() + n);
            pos += n;
        }
        src.position(src.limit());
    }

    /**
     * Zero writes: whole grains of an extent with zeroed grains (version 2
     * with the flag) become zeroed-grain entries, as in qemu; grains that are
     * unallocated without a parent already read as zeros and stay so; the
     * rest is written as zeros.
     */
    @Override
    public void writeZeroes(long guestOffset, long length, boolean mayUnmap) throws IOException {
        checkWritable();
        checkRange(guestOffset, length);
        if (length == 0) {
            return;
        }
        checkExtentsWritable(guestOffset, length);
        long pos = guestOffset;
        long end = guestOffset + length;
        while (pos < end) {
            Extent e = extentAt(pos);
            long offset = pos - e.guestStart;
            long n = Math.min(end - pos, e.length - offset);
            if (e instanceof SparseExtent sparse) {
                long grain = sparse.grainBytes();
                long inGrain = offset % grain;
                n = Math.min(n, grain - inGrain);
                boolean whole = inGrain == 0 && (n == grain || offset + n == e.length);
                if (whole && sparse.zeroWholeGrain(offset, backingName == null, this)) {
                    pos += n;
                    continue;
                }
            }
            super.writeZeroes(pos, n, mayUnmap);
            pos += n;
        }
    }

    /** Every extent the range touches can be written, or nothing is. */
    private void checkExtentsWritable(long guestOffset, long length) throws IOException {
        long pos = guestOffset;
        long end = guestOffset + length;
        while (pos < end) {
            Extent e = extentAt(pos);
            String why = null;
            if (e instanceof ZeroExtent) {
                why = "a ZERO extent has no file to write to";
            } else if (readOnlyLines.contains(e)) {
                why = "the descriptor makes the extent of " + e.file.name() + " read-only (RDONLY)";
            } else if (e instanceof SparseExtent sparse) {
                why = sparse.whyNotWritable();
                if (why == null) {
                    long from = pos - e.guestStart;
                    sparse.checkWrite(from, Math.min(end, e.guestEnd()) - pos); // damaged tables: nothing written
                }
            }
            if (why != null) {
                throw new UnsupportedFeatureException(storage.name() + ": cannot write guest offset " + pos + ": "
                        + why + "; nothing was written");
            }
            pos = e.guestEnd();
        }
    }

    /** The grain a partial write allocates: what the guest reads there now, from the parent (or zeros). */
    void readBelow(ByteBuffer grain, long guestOffset) throws IOException {
        long inDisk = Math.max(0, Math.min(grain.remaining(), size - guestOffset));
        ByteBuffer part = grain.slice(grain.position(), (int) inDisk);
        readBacking(part, guestOffset);
        fillZero(grain.position(grain.position() + (int) inDisk));
    }

    TableCache tables() {
        return tables;
    }

    /**
     * qemu's vmdk_write_cid on the first write of an open: a new random CID
     * in the descriptor, written in place with as many hex digits as the old
     * one and synced before any guest data, so a snapshot that records the
     * old CID as its parentCID never reads a changed disk unnoticed.
     */
    private void updateCid() throws IOException {
        if (cidUpdated) {
            return;
        }
        cidUpdated = true;
        int[] span = cidDigits(descriptorText);
        if (span == null) {
            return; // no CID line to change (the open required one, so this does not happen)
        }
        int digits = span[1] - span[0];
        long newCid;
        do {
            newCid = java.util.concurrent.ThreadLocalRandom.current().nextLong(1L << Math.min(32, 4 * digits));
        } while (newCid == cid || newCid == Descriptor.NO_PARENT_CID);
        byte[] hex = String.format("%0" + digits + "x", newCid).getBytes(java.nio.charset.StandardCharsets.US_ASCII);
        System.arraycopy(hex, hex.length - digits, descriptorText, span[0], digits);
        var tracker = tables.tracker(storage);
        tracker.write(ByteBuffer.wrap(descriptorText, span[0], digits), descriptorAt + span[0]);
        tracker.flush();
        cid = newCid;
    }

    /** [start, end) of the hex digits of the descriptor's CID line (after an optional 0x), or null. */
    static int[] cidDigits(byte[] text) {
        if (text == null) {
            return null;
        }
        int i = 0;
        while (i < text.length && text[i] != 0) {
            int lineEnd = i;
            while (lineEnd < text.length && text[lineEnd] != '\n' && text[lineEnd] != 0) {
                lineEnd++;
            }
            int p = i;
            while (p < lineEnd && (text[p] == ' ' || text[p] == '\t')) {
                p++;
            }
            if (p + 3 <= lineEnd && text[p] == 'C' && text[p + 1] == 'I' && text[p + 2] == 'D') {
                int q = p + 3;
                while (q < lineEnd && (text[q] == ' ' || text[q] == '\t')) {
                    q++;
                }
                if (q < lineEnd && text[q] == '=') {
                    q++;
                    while (q < lineEnd && (text[q] == ' ' || text[q] == '\t')) {
                        q++;
                    }
                    if (q + 1 < lineEnd && text[q] == '0' && (text[q + 1] == 'x' || text[q + 1] == 'X')) {
                        q += 2;
                    }
                    int start = q;
                    while (q < lineEnd && Character.digit(text[q], 16) >= 0) {
                        q++;
                    }
                    return q > start ? new int[]{start, Math.min(q, start + 8)} : null;
                }
            }
            i = lineEnd + 1;
        }
        return null;
    }

    /** Grain tables written back after the grains they name, then every file written synced. */
    @Override
    public void flush() throws IOException {
        if (tables != null && !isReadOnly()) {
            tables.flush();
        }
    }

    @Override
    protected void closeImage() throws IOException {
        IOException failure = null;
        try {
            flush();
        } catch (IOException x) {
            failure = x;
        }
        for (Extent e : extents) {
            if (e instanceof SparseExtent s) {
                s.close();
            }
        }
        for (Storage s : extentFiles) {
            try {
                s.close();
            } catch (IOException x) {
                failure = failure == null ? x : failure;
            }
        }
        if (failure != null) {
            throw failure;
        }
    }

    // ---- info, check ----------------------------------------------------------------------

    /**
     * qemu-img's fields; the format-specific part as vmdk_get_specific_info
     * gives it (keys in the order qemu prints them), an extent's filename as
     * qemu names its file (the descriptor's directory as given, then the name).
     */
    @Override
    public ImageInfo info() throws IOException {
        Map<String, Object> specific = new LinkedHashMap<>();
        specific.put("cid", cid);
        specific.put("parent-cid", parentCid);
        specific.put("create-type", createType);
        List<Object> list = new ArrayList<>();
        long actual = storage.allocatedBytes();
        for (Extent e : extents) {
            Map<String, Object> m = new LinkedHashMap<>();
            if (e instanceof SparseExtent s && s.header.compressed()) {
                m.put("compressed", true);
            }
            m.put("virtual-size", e.length);
            if (e.file != null) {
                m.put("filename", e.file.name());
            }
            if (e instanceof SparseExtent s) {
                m.put("cluster-size", s.grainBytes());
            }
            m.put("format", e.type);
            list.add(m);
            if (e.file != null && e.file != storage && actual >= 0) {
                long a = e.file.allocatedBytes(); // per extent, as qemu counts
                actual = a < 0 ? -1 : actual + a;
            }
        }
        specific.put("extents", list);
        String full = Images.fullBackingFilename(context.path(), backingName);
        // qemu's vmdk_co_get_info fails for extents of different kinds: no cluster size, no dirty flag then
        return new ImageInfo(storage.name(), VmdkFormat.NAME, size, actual, clusterSize, false, false, backingName,
                full, backingFmt, specific, List.of(), extentsOfOneKind(extents));
    }

    /**
     * qemu-img check: qemu 7.2's test (grains past the end of their file:
     * "Check failed", exit 1, as qemu) and the damage it misses, counted as
     * corruptions (exit 2). Repairs: none, as qemu (exit 63).
     */
    @Override
    public CheckReport check(RepairMode repair, io.diskmorph.image.PhaseProgress progress) throws IOException {
        if (repair != RepairMode.NONE) {
            throw new UnsupportedFeatureException("This image format does not support checks");
        }
        return VmdkChecker.run(this, progress);
    }

    // ---- in place to raw: VmdkRelocation ----------------------------------------------------

    @Override
    public long unitSize() {
        return extents.isEmpty() ? clusterSize : extents.getFirst().grainBytes();
    }

    @Override
    public String notRelocatable() {
        return VmdkRelocation.whyNot(this);
    }

    @Override
    public long relocatedMetadataBytes(long metadataOffset) throws IOException {
        return VmdkRelocation.metadataBytes(this);
    }

    @Override
    public Relocation relocate(Storage writable, long metadataOffset) throws IOException {
        return VmdkRelocation.start(this, writable, metadataOffset);
    }

    // ---- the picture of the file (diskmorph layout) ----

    /**
     * The image's own file: a descriptor file is its descriptor (sparse
     * header and descriptor when it is wrapped in one); a hosted sparse
     * extent in it (monolithicSparse, streamOptimized) its header, embedded
     * descriptor, grain directories and the grain tables they name; a
     * stream's grains are reported too ({@link #reportsCompressedData}):
     * each grain's 12-byte marker and its deflated bytes up to the sector
     * that ends it, and the sector markers in front of tables and
     * directory, the footer and the end-of-stream marker of a stream whose
     * directory is at the end (VMware's layout; qemu's streams keep their
     * tables after the header, without markers, and end after the last
     * grain).
     */
    @Override
    public void metadataRegions(Sink sink) throws IOException {
        SparseExtent own = ownSparseExtent();
        if (own == null) {
            boolean inFile = false;
            for (Extent e : extents) {
                inFile |= e.file == storage();
            }
            if (!inFile && descriptorText != null) {
                if (descriptorAt >= SECTOR) {
                    sink.region("header", 0, SECTOR); // a sparse header that only wraps the descriptor
                }
                sink.region("descriptor", descriptorAt, descriptorText.length);
            }
            return;
        }
        SparseHeader h = own.header;
        sink.region("header", 0, SparseHeader.SECTOR);
        if (h.descriptorBytes() > 0) {
            sink.region("descriptor", h.descriptorOffset(), h.descriptorBytes());
        }
        boolean stream = h.markers();
        long fileSize = storage().size();
        long directory = h.gdEntries() * h.entryBytes();
        sink.region("grain directory", h.gdOffset(), directory);
        if (stream) {
            sectionMarker(sink, h.gdOffset(), 2, Math.ceilDiv(directory, SECTOR));
        }
        if (h.rgdOffset() != 0) {
            sink.region("grain directory", h.rgdOffset(), directory);
        }
        long n = own.directoryEntriesInFile();
        // every grain of a stream holds a sector of its own: more grains than the file has sectors is a damaged
        // (or hostile) file whose tables name grains again and again; the walk stops there rather than read on
        long[] grainsLeft = {Math.ceilDiv(fileSize, SECTOR)};
        for (long i = own.nextTableIndex(0, n, false); i < n; i = own.nextTableIndex(i + 1, n, false)) {
            long t = own.grainTableOffset(i);
            sink.region("grain tables", t, h.gtBytes());
            if (stream) {
                sectionMarker(sink, t, 1, h.gtBytes() / SECTOR);
            }
            if (stream && h.compressed()) {
                streamGrains(sink, own, t, fileSize, grainsLeft);
            }
        }
        if (h.rgdOffset() != 0) {
            for (long i = own.nextTableIndex(0, n, true); i < n; i = own.nextTableIndex(i + 1, n, true)) {
                long r = own.redundantGrainTableOffset(i);
                if (r != own.grainTableOffset(i)) {
                    sink.region("grain tables", r, h.gtBytes());
                }
            }
        }
        if (stream && storage().readBytes(0, SECTOR).order(ByteOrder.LITTLE_ENDIAN).getLong(56)
                == SparseHeader.GD_AT_END) {
            // the opening checked them: footer marker, footer (the header again), end-of-stream marker
            long last = Math.ceilDiv(fileSize, SECTOR) * SECTOR;
            sink.region(SECTION_MARKERS, last - 3 * SECTOR, SECTOR);
            sink.region("footer", last - 2 * SECTOR, SECTOR);
            sink.region(SECTION_MARKERS, last - SECTOR, SECTOR);
        }
    }

    /** Kind of the one-sector markers of a stream: before a grain table, the directory, the footer; its end. */
    static final String SECTION_MARKERS = "section markers";

    /** The hosted sparse extent that lives in the image's own file (monolithicSparse, streamOptimized), or null. */
    private SparseExtent ownSparseExtent() {
        for (Extent e : extents) {
            if (e instanceof SparseExtent se && e.file == storage() && se.header.kind() == SparseHeader.Kind.HOSTED) {
                return se;
            }
        }
        return null;
    }

    /**
     * The sector before {@code table}, named when it is the stream marker of
     * that {@code type} and size (qemu's streams have none: the sector is
     * another table's).
     */
    private void sectionMarker(Sink sink, long table, int type, long sectors) throws IOException {
        if (table < 2 * SECTOR) {
            return;
        }
        ByteBuffer m = storage().readBytes(table - SECTOR, 16).order(ByteOrder.LITTLE_ENDIAN);
        if (m.remaining() == 16 && m.getLong(0) == sectors && m.getInt(8) == 0 && m.getInt(12) == type) {
            sink.region(SECTION_MARKERS, table - SECTOR, SECTOR);
        }
    }

    /**
     * The grains of the grain table at {@code table}: marker and deflated
     * bytes, as long as the marker says (a marker that is not one, past the
     * end or with a size out of range, names nothing: check reports it), at
     * most {@code grainsLeft[0]} more of them.
     */
    private void streamGrains(Sink sink, SparseExtent own, long table, long fileSize, long[] grainsLeft)
            throws IOException {
        long[] entries = own.grainTable(table);
        long previous = -1;
        for (int k = 0; k < entries.length && grainsLeft[0] > 0; k++) {
            long sector = own.grainSector(entries[k], table + 4L * k);
            if (sector < 0 || sector == previous) {
                continue; // unallocated, zeroed; or the same grain twice in a row, named once
            }
            previous = sector;
            long at = sector * SECTOR;
            if (at < SECTOR || at + 12 > fileSize) {
                continue;
            }
            long size = Integer.toUnsignedLong(storage().readBytes(at, 12).order(ByteOrder.LITTLE_ENDIAN).getInt(8));
            if (size == 0 || size > 2 * own.grainBytes()) {
                continue;
            }
            grainsLeft[0]--;
            sink.region("grain markers", at, 12);
            sink.region(COMPRESSED_DATA, at + 12, Math.ceilDiv(12 + size, SECTOR) * SECTOR - 12);
        }
    }

    /** A stream's grains are named by {@link #metadataRegions} with their real size, which the mapping does not know. */
    @Override
    public boolean reportsCompressedData() {
        SparseExtent own = ownSparseExtent();
        return own != null && own.header.compressed() && own.header.markers();
    }
}
