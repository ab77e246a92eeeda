package io.diskmorph.format.qcow;

import io.diskmorph.image.CreateSpec;
import io.diskmorph.image.DiskImage;
import io.diskmorph.image.FormatOptions;
import io.diskmorph.image.ImageFormat;
import io.diskmorph.image.InvalidRequestException;
import io.diskmorph.image.MeasurableFormat;
import io.diskmorph.image.OpenContext;
import io.diskmorph.image.UnsupportedFeatureException;
import io.diskmorph.storage.Storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.List;

/** QEMU's original copy-on-write format, version 1, with qemu 7.2's block/qcow.c as the authority. */
public final class QcowFormat implements ImageFormat, MeasurableFormat {
    public static final String NAME = "qcow";
    private static final int ZERO_CHUNK = 1 << 20;

    @Override
    public String name() {
        return NAME;
    }

    /** qemu's qcow_probe: the magic and version 1 in the (zero padded) first bytes. */
    @Override
    public int probe(ByteBuffer head, long fileSize) {
        if (head.remaining() < 8) {
            return 0;
        }
        ByteBuffer b = head.slice().order(ByteOrder.BIG_ENDIAN);
        return b.getInt(0) == QcowHeader.MAGIC && b.getInt(4) == QcowHeader.VERSION ? 100 : 0;
    }

    @Override
    public DiskImage open(Storage storage, OpenContext context) throws IOException {
        return QcowImage.open(this, storage, context);
    }

    /** What qemu-img create writes: the header, the backing file name, the zeroed L1 table in whole sectors. */
    @Override
    public DiskImage create(Storage storage, CreateSpec spec, OpenContext context) throws IOException {
        Layout l = Layout.of(spec);
        storage.truncate(0);
        ByteBuffer head = ByteBuffer.allocate((int) l.header.l1TableOffset);
        head.put(l.header.encode());
        head.put(l.backingName);
        storage.write(head.clear(), 0);
        ByteBuffer zeros = ByteBuffer.allocate((int) Math.min(ZERO_CHUNK, l.l1Space()));
        for (long done = 0; done < l.l1Space(); ) {
            int n = (int) Math.min(zeros.capacity(), l.l1Space() - done);
            storage.write(zeros.clear().limit(n), l.header.l1TableOffset + done);
            done += n;
        }
        storage.sync();
        return open(storage, context.withReadOnly(false));
    }

    @Override
    public void checkCreateSpec(CreateSpec spec) throws IOException {
        Layout.of(spec);
    }

    @Override
    public List<OptionHelp> createOptions() {
        return List.of(
                new OptionHelp("backing_file", "File name of a base image (the image then gets 512-byte clusters "
                        + "and 32 KiB L2 tables, as qemu-img makes it)"),
                new OptionHelp("backing_fmt", "Format of the base image (checked, but qcow has no field for it: "
                        + "readers probe the base image)"),
                new OptionHelp("encryption", "off only: encrypted qcow images are not supported"));
    }

    /** diskmorph's own figures (qemu-img 7.2 does not measure qcow), exact for what create and convert write. */
    @Override
    public Measurement measure(CreateSpec spec, DiskImage source) throws IOException {
        long size = source != null ? source.virtualSize() : spec.virtualSize();
        CreateSpec sized = new CreateSpec(Math.max(size, 1), spec.options(), spec.backingFile(),
                spec.backingFormat());
        Layout l = Layout.of(sized);
        QcowHeader h = l.header;
        long c = h.clusterSize();
        long created = h.l1TableOffset + l.l1Space();
        // every allocation starts at the end of the file rounded up to a cluster
        long table = Math.ceilDiv(h.l2TableBytes(), c) * c;
        long full = ((created + c - 1) & -c) + h.l1Entries() * table + Math.ceilDiv(h.virtualSize(), c) * c;
        if (source == null) {
            return new Measurement(created, full, -1);
        }
        if (h.hasBackingFile()) {
            return new Measurement(full, full, -1);
        }
        long[] bytes = MeasurableFormat.dataBytes(source, h.l2Coverage(), c); // one walk for both
        long tables = bytes[0] / h.l2Coverage();
        long data = bytes[1];
        long required = tables == 0 ? created : ((created + c - 1) & -c) + tables * table + data;
        return new Measurement(required, full, -1);
    }

    /** A new image's header and backing file name, judged as create judges them. */
    record Layout(QcowHeader header, byte[] backingName) {
        /** The L1 table's bytes as qemu writes them: whole sectors. */
        long l1Space() {
            return (header.l1Bytes() + 511) & ~511L;
        }

        static Layout of(CreateSpec spec) throws IOException {
            FormatOptions o = new FormatOptions(NAME, spec.options());
            String backing = spec.backingFile() != null ? spec.backingFile() : o.string("backing_file", null);
            String backingFormat = spec.backingFormat() != null ? spec.backingFormat() : o.string("backing_fmt", null);
            if (o.has("encrypt.format") || o.has("encrypt.key-secret") || o.bool("encryption", false)) {
                throw new UnsupportedFeatureException("encrypted qcow images are not supported (qemu's qcow AES "
                        + "encryption is deprecated and unsafe; use qcow2 with LUKS)");
            }
            o.rejectUnknown();
            if (spec.virtualSize() <= 0) {
                throw new InvalidRequestException("Image size is too small, cannot be zero length");
            }
            long size = Math.addExact(spec.virtualSize(), 511) & ~511L;
            byte[] name = new byte[0];
            if (backing != null) {
                name = backing.getBytes(StandardCharsets.UTF_8);
                if (name.length == 0 || name.length > QcowHeader.MAX_BACKING_NAME) {
                    throw new InvalidRequestException("qcow backing file name must be 1 to "
                            + QcowHeader.MAX_BACKING_NAME + " bytes long");
                }
            } else if (backingFormat != null) {
                throw new InvalidRequestException("backing_fmt given without a backing file");
            }
            // qemu: 512-byte clusters over a backing file (no partial-cluster copies), 4 KiB otherwise
            int clusterBits = backing != null ? 9 : 12;
            int l2Bits = backing != null ? 12 : 9;
            long l1Entries = QcowHeader.l1Entries(size, clusterBits + l2Bits);
            if (l1Entries > Integer.MAX_VALUE / 8) {
                throw new InvalidRequestException("Image too large for qcow (" + size + " bytes)");
            }
            long l1Offset = (QcowHeader.BYTES + name.length + 7) & ~7L;
            QcowHeader h = new QcowHeader(backing != null ? QcowHeader.BYTES : 0, name.length, 0, size, clusterBits,
                    l2Bits, QcowHeader.CRYPT_NONE, l1Offset);
            return new Layout(h, name);
        }
    }
}
