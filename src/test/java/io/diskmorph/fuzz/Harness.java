package io.diskmorph.fuzz;

import io.diskmorph.image.ChainMap;
import io.diskmorph.image.CheckReport;
import io.diskmorph.image.CorruptImageException;
import io.diskmorph.image.DiskImage;
import io.diskmorph.image.FormatRegistry;
import io.diskmorph.image.OpenContext;
import io.diskmorph.image.ImageException;
import io.diskmorph.image.ImageInfo;
import io.diskmorph.image.Images;
import io.diskmorph.image.MapEntry;
import io.diskmorph.image.Mapping;
import io.diskmorph.image.RepairMode;
import io.diskmorph.storage.MemoryStorage;
import io.diskmorph.storage.Storage;

import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.nio.ByteBuffer;
import java.util.Arrays;

/**
 * The oracle every fuzz target shares. An operation on a hostile image may
 * succeed or be refused; a refusal must be an {@link ImageException} (the
 * CLI turns those into one line and a documented exit code) with a one-line
 * message, and a {@link CorruptImageException} must name its structure.
 * Anything else (a RuntimeException, an Error, a bare IOException) is a
 * finding. Successful answers are cross-checked: guest reads agree with the
 * map, check counters are sane, and a repair's report is what a fresh check
 * of the repaired image says.
 */
final class Harness {
    /** Memory an operation may allocate in total: QEMU-like caps (32 MiB L1, 8 MiB refcounts, caches) ... */
    static final long ALLOCATION_BASE = 64L << 20;
    /** ... plus this many bytes per byte of input file. */
    static final long ALLOCATION_PER_FILE_BYTE = 16;
    /** In-memory images may not grow past this (a hostile size request must fail, not exhaust the heap). */
    static final long STORAGE_CAP = 256L << 20;

    private static final int READ_SAMPLE = 64 * 1024;
    private static final int MAX_COMPARED_EXTENTS = 64;

    private Harness() {
    }

    @FunctionalInterface
    interface Op {
        void run() throws IOException;
    }

    /**
     * Runs {@code op}; returns true when it succeeded, false when it was
     * refused properly. Improper failures are rethrown as findings.
     */
    static boolean attempt(String what, Op op) {
        try {
            op.run();
            return true;
        } catch (ImageException e) {
            assertProperRefusal(what, e);
            return false;
        } catch (IOException | RuntimeException | StackOverflowError | OutOfMemoryError e) {
            throw new AssertionError(what + ": improper failure " + e, e);
        }
    }

    static void assertProperRefusal(String what, ImageException e) {
        String m = e.getMessage();
        if (m == null || m.isBlank() || m.indexOf('\n') >= 0 || m.indexOf('\r') >= 0) {
            throw new AssertionError(what + ": refusal without a one-line message: [" + m + "]", e);
        }
        if (e instanceof CorruptImageException c
                && (c.structure() == null || c.structure().isBlank() || !m.contains(c.structure()))) {
            throw new AssertionError(what + ": corruption that does not name its structure: " + m, e);
        }
    }

    static MemoryStorage storage(byte[] file) {
        MemoryStorage s = new MemoryStorage("fuzz.img", STORAGE_CAP);
        try {
            s.write(ByteBuffer.wrap(file), 0);
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
        return s;
    }

    /** Opens read-only (no backing files: there are none in memory) and runs every read-side operation. */
    static void openAndExercise(byte[] file, String format) {
        MemoryStorage s = storage(file);
        boolean opened = attempt("open", () -> {
            try (DiskImage img = Images.open(s.copy(true), format, true)) {
                exercise(img);
            }
        });
        if (opened) {
            repairAndRecheck(s, format);
        }
        assertUnchanged(file, s, "read-only operations");
    }

    /**
     * {@link ImageFuzzTest#vmdkWrite}: opens a writable copy and writes a
     * pattern at the start, the middle and the end of the disk, then zeros
     * over the first cluster: each write lands (reads back as written) or is
     * refused in one line with the copy unchanged. Images with clusters over
     * 1 MiB are left alone (a partial write fills a whole new cluster, which
     * the allocation bound does not allow for), and so is the rest of an
     * input once the copy would grow past the storage cap (a full disk).
     */
    static void writeAndReadBack(byte[] file, String format) {
        MemoryStorage s = storage(file);
        MemoryStorage copy = s.copy(false);
        attempt("open for writing", () -> {
            try (DiskImage img = Images.open(copy, format, false)) {
                long size = img.virtualSize();
                if (size <= 0 || img.clusterSize() > 1 << 20) {
                    return;
                }
                long[] at = {0, size / 2 / 512 * 512, Math.max(0, size - 4096)};
                for (int i = 0; i <= at.length; i++) {
                    long off = i < at.length ? at[i] : 0;
                    int len = (int) Math.min(i < at.length ? 4096 : Math.max(1, img.clusterSize()), size - off);
                    byte[] data = new byte[len];
                    Arrays.fill(data, i < at.length ? (byte) (i + 1) : 0);
                    byte[] before = copy.toByteArray();
                    try {
                        if (i < at.length) {
                            img.write(ByteBuffer.wrap(data), off);
                        } else {
                            img.writeZeroes(off, len, true);
                        }
                    } catch (ImageException e) {
                        assertProperRefusal("write", e);
                        if (!Arrays.equals(before, copy.toByteArray())) {
                            throw new AssertionError("a refused write changed the file: " + e.getMessage());
                        }
                        continue;
                    } catch (IOException e) {
                        if (String.valueOf(e.getMessage()).contains("storage cap")) {
                            return; // the medium is full
                        }
                        throw e;
                    }
                    ByteBuffer back = ByteBuffer.allocate(len);
                    img.read(back, off);
                    if (!Arrays.equals(back.array(), data)) {
                        throw new AssertionError("the write at " + off + " reads back differently");
                    }
                }
            }
        });
        assertUnchanged(file, s, "writes to a copy");
    }

    /** Extent files a fuzzed descriptor may open (each a copy of the input's extent part). */
    private static final int MAX_FUZZ_EXTENT_FILES = 8;

    /**
     * {@link ImageFuzzTest#vmdkDescriptor}: splits the input into a descriptor
     * and an extent file, opens the descriptor as vmdk with an extent opener
     * that serves the extent part under every name (resolved and checked like
     * real extent names), and runs every read-side operation.
     */
    static void openDescriptorAndExercise(byte[] input) {
        if (input.length < 4) {
            return;
        }
        int length = (int) Math.min(Integer.toUnsignedLong(java.nio.ByteBuffer.wrap(input, 0, 4)
                .order(java.nio.ByteOrder.LITTLE_ENDIAN).getInt()), input.length - 4);
        byte[] descriptor = Arrays.copyOfRange(input, 4, 4 + length);
        byte[] extent = Arrays.copyOfRange(input, 4 + length, input.length);
        MemoryStorage text = storage(descriptor);
        java.util.Map<String, MemoryStorage> extents = new java.util.HashMap<>();
        OpenContext.ExtentOpener opener = (image, name) -> {
            String path = Images.extentPath(image.path(), name).normalize().toString();
            MemoryStorage s = extents.get(path);
            if (s == null) {
                if (extents.size() == MAX_FUZZ_EXTENT_FILES) {
                    throw new io.diskmorph.image.UnsupportedFeatureException("more than " + MAX_FUZZ_EXTENT_FILES
                            + " extent files in one fuzz input");
                }
                s = storage(extent);
                extents.put(path, s);
            }
            return s.copy(true);
        };
        OpenContext context = new OpenContext(java.nio.file.Path.of("fuzz-dir", "fuzz.vmdk"), true, null, false,
                false, opener);
        attempt("open a descriptor", () -> {
            try (DiskImage img = FormatRegistry.byName("vmdk").open(text.copy(true), context)) {
                exercise(img);
            }
        });
        assertUnchanged(descriptor, text, "read-only operations on a descriptor");
        for (MemoryStorage s : extents.values()) {
            assertUnchanged(extent, s, "read-only operations on an extent");
        }
    }

    /** info, map (whole disk), reads checked against the map, check without repair. */
    static void exercise(DiskImage img) {
        long size = img.virtualSize();
        if (size < 0) {
            throw new AssertionError("negative virtual size " + size);
        }
        attempt("info", () -> {
            ImageInfo info = img.info();
            if (info.virtualSize() != size || info.clusterSize() < 0) {
                throw new AssertionError("info disagrees with the image: " + info);
            }
        });
        attempt("map and read", () -> mapAndRead(img));
        attempt("check", () -> assertSane(img.check(RepairMode.NONE), "check"));
    }

    /**
     * Walks the whole map; each extent must be well formed and contiguous,
     * and (for the first extents) guest reads must agree with it: zeros where
     * it says zero or unallocated (no backing files here), the host bytes
     * where it says data at an offset.
     */
    private static void mapAndRead(DiskImage img) throws IOException {
        ChainMap map = new ChainMap(img, true);
        long expected = 0;
        int compared = 0;
        while (map.hasNext()) {
            MapEntry e = map.next();
            if (e.start() != expected || e.length() <= 0 || e.start() + e.length() > img.virtualSize()) {
                throw new AssertionError("map entry out of order or bounds: " + e + " (expected start " + expected
                        + ", size " + img.virtualSize() + ")");
            }
            expected = e.start() + e.length();
            if (compared++ < MAX_COMPARED_EXTENTS) {
                compareExtent(img, e, e.start());
                if (e.length() > READ_SAMPLE) {
                    compareExtent(img, e, e.start() + e.length() - READ_SAMPLE);
                }
            }
        }
        if (expected != img.virtualSize()) {
            throw new AssertionError("map ends at " + expected + ", not at the virtual size " + img.virtualSize());
        }
    }

    private static void compareExtent(DiskImage img, MapEntry e, long from) throws IOException {
        int n = (int) Math.min(READ_SAMPLE, e.start() + e.length() - from);
        ByteBuffer guest = ByteBuffer.allocate(n);
        img.read(guest, from);
        byte[] want;
        if (e.data() && e.hasOffset() && !e.zero()) {
            ByteBuffer host = ByteBuffer.allocate(n);
            // the file that holds the entry: the map names it (an image of several files answers per file)
            Mapping m = img.mapping(from, n);
            Storage file = m instanceof Mapping.Data d ? img.dataStorage(d) : img.dataStorage();
            file.read(host, e.offset() + (from - e.start()));
            want = host.array();
        } else if (e.zero() || !e.present()) {
            want = new byte[n];
        } else {
            return; // compressed data: nothing independent to compare with
        }
        if (!Arrays.equals(want, guest.array())) {
            throw new AssertionError("guest read at " + from + "+" + n + " disagrees with map entry " + e);
        }
    }

    static void assertSane(CheckReport r, String what) {
        if (r.corruptions < 0 || r.leaks < 0 || r.checkErrors < 0 || r.corruptionsFixed < 0 || r.leaksFixed < 0) {
            throw new AssertionError(what + ": negative counter");
        }
        int code = r.exitCode();
        if (code < 0 || code > 3) {
            throw new AssertionError(what + ": exit code " + code);
        }
        for (String m : r.messages) {
            if (m.indexOf('\n') >= 0) {
                throw new AssertionError(what + ": multi-line check message: " + m);
            }
        }
    }

    /**
     * check -r all on a writable copy, then a fresh check of the result: the
     * repair's report describes the image as it is now, so both agree.
     */
    private static void repairAndRecheck(MemoryStorage original, String format) {
        MemoryStorage copy = original.copy(false);
        CheckReport[] after = new CheckReport[1];
        boolean repaired = attempt("check -r all", () -> {
            try (DiskImage img = Images.open(copy, format, false)) {
                after[0] = img.check(RepairMode.ALL);
                assertSane(after[0], "check -r all");
            }
        });
        if (!repaired || after[0] == null || after[0].failure != null) {
            return; // a repair that stopped (qemu's "Check failed: ...") reports no counters to compare
        }
        attempt("check after repair", () -> {
            try (DiskImage img = Images.open(copy.copy(true), format, true)) {
                CheckReport again = img.check(RepairMode.NONE);
                if (again.corruptions != after[0].corruptions || again.leaks != after[0].leaks
                        || again.checkErrors != after[0].checkErrors) {
                    throw new AssertionError(String.format("repair reported %d corruptions, %d leaks, %d errors;"
                                    + " a fresh check finds %d, %d, %d", after[0].corruptions, after[0].leaks,
                            after[0].checkErrors, again.corruptions, again.leaks, again.checkErrors));
                }
            }
        });
    }

    static void assertUnchanged(byte[] before, MemoryStorage now, String what) {
        if (!Arrays.equals(before, now.toByteArray())) {
            throw new AssertionError(what + " changed the file");
        }
    }

    /** Bytes allocated by the current thread so far (HotSpot). */
    static long allocatedBytes() {
        return ((com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean()).getCurrentThreadAllocatedBytes();
    }

    /** Fails when {@code used} bytes allocated is more than the bound for a file of {@code fileLength}. */
    static void assertAllocationBounded(long used, long fileLength, String what) {
        long bound = ALLOCATION_BASE + ALLOCATION_PER_FILE_BYTE * fileLength;
        if (used > bound) {
            throw new AssertionError(String.format("%s allocated %d bytes for a %d-byte file (bound %d)", what, used,
                    fileLength, bound));
        }
    }
}
