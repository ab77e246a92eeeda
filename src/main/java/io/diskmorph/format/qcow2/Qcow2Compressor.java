package io.diskmorph.format.qcow2;

import com.github.luben.zstd.Zstd;
import com.github.luben.zstd.ZstdCompressCtx;
import com.github.luben.zstd.ZstdException;
import io.diskmorph.image.CompressedClusterWriter;
import io.diskmorph.image.UnsupportedFeatureException;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.nio.ByteBuffer;

/**
 * Compresses one guest cluster the way qemu does (block/qcow2-threads.c):
 * zlib as raw deflate with a 4 KiB window (windowBits -12), memLevel 9 and
 * the default level; zstd at its default level, one frame. Like qemu, the
 * output must fit in cluster_size - 1 bytes, or the cluster is stored
 * uncompressed.
 *
 * <p>Deflate goes through the system zlib (java.lang.foreign), because
 * java.util.zip.Deflater always uses a 32 KiB window, which a reader that
 * honours the format's 4 KiB window may reject.
 */
final class Qcow2Compressor implements CompressedClusterWriter.Compressor {
    private static final int Z_OK = 0;
    private static final int Z_STREAM_END = 1;
    private static final int Z_BUF_ERROR = -5;
    private static final int Z_FINISH = 4;
    private static final int Z_DEFLATED = 8;
    private static final int Z_DEFAULT_COMPRESSION = -1;
    private static final int Z_DEFAULT_STRATEGY = 0;
    private static final int ZSTD_DEFAULT_LEVEL = 3;

    /** z_stream on 64-bit Linux (LP64): offsets of the fields we set or read; 112 bytes in all. */
    private static final long Z_STREAM_SIZE = 112;
    private static final long NEXT_IN = 0;
    private static final long AVAIL_IN = 8;
    private static final long NEXT_OUT = 24;
    private static final long AVAIL_OUT = 32;

    private static final MethodHandle DEFLATE_INIT2;
    private static final MethodHandle DEFLATE;
    private static final MethodHandle DEFLATE_RESET;
    private static final MethodHandle DEFLATE_END;
    private static final MemorySegment ZLIB_VERSION;
    private static final String ZLIB_ERROR;

    static {
        MethodHandle init = null, deflate = null, reset = null, end = null;
        MemorySegment version = null;
        String error = null;
        try {
            Linker linker = Linker.nativeLinker();
            SymbolLookup z = SymbolLookup.libraryLookup("libz.so.1", Arena.global());
            init = linker.downcallHandle(z.find("deflateInit2_").orElseThrow(), FunctionDescriptor.of(
                    ValueLayout.JAVA_INT, ValueLayout.ADDRESS, ValueLayout.JAVA_INT, ValueLayout.JAVA_INT,
                    ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.ADDRESS,
                    ValueLayout.JAVA_INT));
            deflate = linker.downcallHandle(z.find("deflate").orElseThrow(),
                    FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.ADDRESS, ValueLayout.JAVA_INT));
            reset = linker.downcallHandle(z.find("deflateReset").orElseThrow(),
                    FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.ADDRESS));
            end = linker.downcallHandle(z.find("deflateEnd").orElseThrow(),
                    FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.ADDRESS));
            MethodHandle zlibVersion = linker.downcallHandle(z.find("zlibVersion").orElseThrow(),
                    FunctionDescriptor.of(ValueLayout.ADDRESS));
            version = ((MemorySegment) zlibVersion.invokeExact()).reinterpret(64);
        } catch (Throwable e) {
            error = "zlib compression needs the system zlib (libz.so.1): " + e.getMessage();
        }
        DEFLATE_INIT2 = init;
        DEFLATE = deflate;
        DEFLATE_RESET = reset;
        DEFLATE_END = end;
        ZLIB_VERSION = version;
        ZLIB_ERROR = error;
    }

    private final int clusterSize;
    private final boolean zstd;
    private final Arena arena;
    private MemorySegment stream;
    private MemorySegment input;
    private MemorySegment output;
    private ZstdCompressCtx zstdCtx;
    private byte[] zstdInput;

    Qcow2Compressor(int compressionType, int clusterSize) throws IOException {
        this.clusterSize = clusterSize;
        this.zstd = compressionType == Qcow2Header.COMPRESSION_ZSTD;
        this.arena = Arena.ofShared();
        try {
            if (zstd) {
                zstdCtx = new ZstdCompressCtx().setLevel(ZSTD_DEFAULT_LEVEL);
                zstdInput = new byte[clusterSize];
            } else {
                if (ZLIB_ERROR != null) {
                    throw new UnsupportedFeatureException(ZLIB_ERROR);
                }
                stream = arena.allocate(Z_STREAM_SIZE, 8); // zeroed: default allocators, no opaque
                input = arena.allocate(clusterSize, 64);
                output = arena.allocate(clusterSize, 64);
                int r = (int) DEFLATE_INIT2.invokeExact(stream, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -12, 9,
                        Z_DEFAULT_STRATEGY, ZLIB_VERSION, (int) Z_STREAM_SIZE);
                if (r != Z_OK) {
                    stream = null;
                    throw new IOException("zlib deflateInit2 failed (" + r + ")");
                }
            }
        } catch (IOException | RuntimeException e) {
            close();
            throw e;
        } catch (Throwable e) {
            close();
            throw new IOException("zlib call failed: " + e, e);
        }
    }

    @Override
    public int compress(ByteBuffer cluster, byte[] out) throws IOException {
        int n = cluster.remaining();
        if (n != clusterSize || out.length < clusterSize) {
            throw new IllegalArgumentException("compress needs one whole cluster of " + clusterSize + " bytes");
        }
        return zstd ? compressZstd(cluster, out) : compressDeflate(cluster, out);
    }

    private int compressDeflate(ByteBuffer cluster, byte[] out) throws IOException {
        MemorySegment in = cluster.isDirect() ? MemorySegment.ofBuffer(cluster) : copyIn(cluster);
        try {
            int r = (int) DEFLATE_RESET.invokeExact(stream);
            if (r != Z_OK) {
                throw new IOException("zlib deflateReset failed (" + r + ")");
            }
            stream.set(ValueLayout.ADDRESS, NEXT_IN, in);
            stream.set(ValueLayout.JAVA_INT, AVAIL_IN, clusterSize);
            stream.set(ValueLayout.ADDRESS, NEXT_OUT, output);
            stream.set(ValueLayout.JAVA_INT, AVAIL_OUT, clusterSize - 1);
            r = (int) DEFLATE.invokeExact(stream, Z_FINISH);
            if (r == Z_OK || r == Z_BUF_ERROR) {
                return -1; // did not fit in cluster_size - 1 bytes
            }
            if (r != Z_STREAM_END) {
                throw new IOException("zlib deflate failed (" + r + ")");
            }
            int len = clusterSize - 1 - stream.get(ValueLayout.JAVA_INT, AVAIL_OUT);
            MemorySegment.copy(output, ValueLayout.JAVA_BYTE, 0, out, 0, len);
            return len;
        } catch (IOException | RuntimeException e) {
            throw e;
        } catch (Throwable e) {
            throw new IOException("zlib call failed: " + e, e);
        }
    }

    private MemorySegment copyIn(ByteBuffer cluster) {
        input.copyFrom(MemorySegment.ofBuffer(cluster));
        return input;
    }

    private int compressZstd(ByteBuffer cluster, byte[] out) throws IOException {
        cluster.get(cluster.position(), zstdInput, 0, clusterSize);
        try {
            return zstdCtx.compressByteArray(out, 0, clusterSize - 1, zstdInput, 0, clusterSize);
        } catch (ZstdException e) {
            if (e.getErrorCode() == Zstd.errDstSizeTooSmall()) {
                return -1; // did not fit in cluster_size - 1 bytes
            }
            throw new IOException("zstd compression failed: " + e.getMessage());
        }
    }

    @Override
    public void close() {
        if (stream != null) {
            try {
                int ignored = (int) DEFLATE_END.invokeExact(stream); // only fails for a bad stream
            } catch (Throwable e) {
                // nothing to recover; zlib's own allocations are freed by deflateEnd or lost with the process
            }
            stream = null;
        }
        if (zstdCtx != null) {
            zstdCtx.close();
            zstdCtx = null;
        }
        arena.close();
    }
}
