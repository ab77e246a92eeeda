package io.diskmorph.format.qcow2;

import java.util.Arrays;

/**
 * One header extension (qcow2.rst "Header extensions"): type, length, data
 * padded to 8 bytes on disk. Unknown types are kept byte for byte so a header
 * rewrite preserves them.
 */
record HeaderExtension(int type, byte[] data) {
    static final int END = 0;
    static final int BACKING_FORMAT = 0xe2792aca;
    static final int FEATURE_NAME_TABLE = 0x6803f857;
    static final int BITMAPS = 0x23852875;
    static final int FULL_DISK_ENCRYPTION = 0x0537be77;
    static final int EXTERNAL_DATA_FILE = 0x44415441;

    HeaderExtension {
        data = data.clone();
    }

    @Override
    public byte[] data() {
        return data.clone();
    }

    /** Bytes on disk: 8-byte type/length, data, padding to a multiple of 8. */
    int encodedLength() {
        return 8 + ((data.length + 7) & ~7);
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof HeaderExtension e && e.type == type && Arrays.equals(e.data, data);
    }

    @Override
    public int hashCode() {
        return 31 * type + Arrays.hashCode(data);
    }

    @Override
    public String toString() {
        return String.format("HeaderExtension[0x%08x, %d bytes]", type, data.length);
    }
}
