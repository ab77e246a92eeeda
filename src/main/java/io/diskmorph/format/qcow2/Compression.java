package io.diskmorph.format.qcow2;

import com.github.luben.zstd.Zstd;

import java.util.zip.DataFormatException;
import java.util.zip.Inflater;

/**
 * Decompression of compressed clusters (qemu block/qcow2-threads.c): raw
 * deflate (zlib window -12, no header) or zstd frames. Like qemu, success
 * means the output cluster is filled completely; bytes after the
 * compressed stream (sector padding) are ignored.
 */
final class Compression {
    private Compression() {
    }

    /**
     * Decompresses {@code src[0, srcLen)} into all of {@code dst}.
     *
     * @return null on success, else a description of the failure
     */
    static String decompress(int type, byte[] src, int srcLen, byte[] dst) {
        return type == Qcow2Header.COMPRESSION_ZSTD ? zstd(src, srcLen, dst) : deflate(src, srcLen, dst);
    }

    private static String deflate(byte[] src, int srcLen, byte[] dst) {
        Inflater inf = new Inflater(true);
        try {
            // raw inflate may want one byte past the stream; src has a spare zero byte for that
            inf.setInput(src, 0, Math.min(src.length, srcLen + 1));
            int done = 0;
            while (done < dst.length) {
                int n = inf.inflate(dst, done, dst.length - done);
                done += n;
                if (n == 0 && (inf.finished() || inf.needsInput() || inf.needsDictionary())) {
                    break;
                }
            }
            return done == dst.length ? null : "deflate stream ends after " + done + " of " + dst.length + " bytes";
        } catch (DataFormatException e) {
            return "invalid deflate data (" + e.getMessage() + ")";
        } finally {
            inf.end();
        }
    }

    private static String zstd(byte[] src, int srcLen, byte[] dst) {
        int in = 0;
        int out = 0;
        try {
            while (out < dst.length) {
                if (in >= srcLen) {
                    return "zstd data ends after " + out + " of " + dst.length + " bytes";
                }
                long frame = Zstd.findFrameCompressedSize(src, in, srcLen - in);
                if (Zstd.isError(frame) || frame <= 0) {
                    return "invalid zstd frame at byte " + in;
                }
                long n = Zstd.decompressByteArray(dst, out, dst.length - out, src, in, (int) frame);
                if (Zstd.isError(n)) {
                    return "invalid zstd data (" + Zstd.getErrorName(n) + ")";
                }
                in += (int) frame;
                out += (int) n;
                if (n == 0 && out < dst.length) {
                    return "empty zstd frame";
                }
            }
            return null;
        } catch (RuntimeException e) {
            return "invalid zstd data (" + e.getMessage() + ")";
        }
    }
}
