package io.diskmorph.layout;

import com.fasterxml.jackson.databind.JsonNode;
import io.diskmorph.image.ExitCodes;
import io.diskmorph.testing.Dm;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.w3c.dom.Document;
import org.w3c.dom.Element;
import org.w3c.dom.NodeList;

import javax.imageio.ImageIO;
import javax.xml.parsers.DocumentBuilderFactory;
import java.awt.image.BufferedImage;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.StandardOpenOption;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.*;

/**
 * {@code diskmorph layout}: the areas drawn per kind are the kind's bytes
 * (the SVG parsed: rectangles' areas times the picture's scale), the guest
 * data bytes are those qemu-img map reports in the file, every byte of the
 * file is drawn once, and the SVG renders in a real renderer (rsvg-convert)
 * to a PNG of its size that is not blank.
 */
class LayoutCommandTest {
    @TempDir
    Path dir;

    @ParameterizedTest(name = "{0} {1}")
    @CsvSource({"qcow2, cluster_size=64k", "qcow2, cluster_size=4k", "qed, cluster_size=64k", "vdi, static=off",
            "vhdx, block_size=1M", "raw, ''", "vmdk, subformat=monolithicSparse", "vpc, subformat=dynamic",
            "qcow, ''", "parallels, cluster_size=1M", "parallels, cluster_size=64k"})
    void areasAreBytesAndDataIsWhatQemuMaps(String format, String opts) throws Exception {
        Path img = dir.resolve("a." + format);
        if (opts.isEmpty()) {
            Qemu.create(img, format, "24M");
        } else {
            Qemu.create(img, format, "24M", opts);
        }
        // written out of guest order, so the data's colours change along the file
        Qemu.io(img, format, "write -P 1 16M 3M", "write -P 2 0 1M", "write -P 3 8M 512k", "write -z 20M 1M");
        PictureCheck picture = picture(img);
        JsonNode bytes = picture.bytes;

        // guest data: the bytes qemu-img maps as data in this file (VHDX: qemu 7.2 maps every byte as data
        // without offsets, so diskmorph's map, which the VHDX tests check against the BAT, is the reference)
        long mapped = 0;
        for (Qemu.MapLine l : format.equals("vhdx") ? Dm.map(img, format) : Qemu.map(img, format)) {
            mapped += l.data() && l.offset() >= 0 ? l.length() : 0;
        }
        assertEquals(mapped, bytes.get(HostLayout.DATA).asLong(), "guest data bytes: " + bytes);
        if (!format.equals("raw")) {
            long named = 0;
            for (var it = bytes.fields(); it.hasNext(); ) {
                var e = it.next();
                if (!List.of(HostLayout.DATA, HostLayout.COMPRESSED, HostLayout.HOLE, HostLayout.UNREFERENCED)
                        .contains(e.getKey())) {
                    named += e.getValue().asLong();
                }
            }
            assertTrue(named > 0, "the driver names its metadata: " + bytes);
        }
        if (format.equals("parallels")) {
            // header and BAT exactly: 64 bytes, then 4 per cluster of the disk
            long cluster = opts.endsWith("64k") ? 65536 : 1 << 20;
            assertEquals(64, bytes.get("header").asLong(), bytes.toString());
            assertEquals(4 * Math.ceilDiv(24L << 20, cluster), bytes.get("BAT").asLong(), bytes.toString());
        }

        picture.rendersInRsvg();
    }

    /**
     * streamOptimized VMDK, as qemu-img lays it out (tables after the
     * header, grains behind markers, no footer) and as diskmorph writes it
     * (VMware's: tables behind markers after their grains, directory,
     * footer and end-of-stream marker at the end): the grains are drawn as
     * compressed data with their markers, in the sizes a sequential reader
     * of the stream finds, and their number is qemu-img map's data.
     */
    @ParameterizedTest(name = "written by {0}")
    @CsvSource({"qemu-img", "diskmorph"})
    void streamOptimizedVmdk(String writer) throws Exception {
        Path src = dir.resolve("s.qcow2");
        Qemu.create(src, "qcow2", "72M");
        Qemu.io(src, "qcow2", "write -P 1 0 1M", "write -P 2 8M 512k", "write -P 3 40M 3M", "write -z 60M 1M");
        Path img = dir.resolve("s.vmdk");
        if (writer.equals("qemu-img")) {
            Qemu.img("convert", "-O", "vmdk", "-o", "subformat=streamOptimized", src, img).ok();
        } else {
            Dm.run("convert", "-O", "vmdk", "-o", "subformat=streamOptimized", src, img).ok();
        }
        PictureCheck picture = picture(img);
        JsonNode bytes = picture.bytes;

        // the stream read front to back, as a stream reader would (the driver goes through the tables)
        byte[] f = Files.readAllBytes(img);
        ByteBuffer b = ByteBuffer.wrap(f).order(ByteOrder.LITTLE_ENDIAN);
        long grains = 0;
        long deflated = 0;
        long sectionMarkers = 0;
        long tables = 0;
        int at = (int) (b.getLong(64) * 512); // overHead: the first grain
        while (at + 16 <= f.length) {
            long value = b.getLong(at);
            int size = b.getInt(at + 8);
            if (size != 0) {
                grains++;
                int padded = Math.ceilDiv(12 + size, 512) * 512;
                deflated += padded - 12;
                at += padded;
                continue;
            }
            int type = b.getInt(at + 12);
            if (type == 0) {
                sectionMarkers++; // end of stream (qemu's streams end in zeros instead)
                break;
            }
            sectionMarkers++;
            tables += type == 1 ? 1 : 0;
            at += 512 + (int) value * 512;
        }
        long mapped = 0;
        for (Qemu.MapLine l : Qemu.map(img, "vmdk")) {
            mapped += l.data() ? l.length() : 0;
        }
        assertEquals(mapped, grains * 65536, "grains found by the sequential read vs qemu-img map");
        assertEquals(12 * grains, bytes.get("grain markers").asLong(), bytes.toString());
        assertEquals(deflated, bytes.get(HostLayout.COMPRESSED).asLong(), bytes.toString());
        assertTrue(Files.readString(picture.svg()).contains("data-kind=\"compressed data\" data-bytes=\"" + deflated
                + "\">compressed data: "), "the legend names the grains as compressed data");
        assertEquals(0, bytes.get(HostLayout.DATA).asLong(), bytes.toString());
        assertEquals(512, bytes.get("header").asLong(), bytes.toString());
        assertTrue(bytes.get("descriptor").asLong() > 0, bytes.toString());
        if (writer.equals("qemu-img")) {
            // qemu: a directory and a redundant one with all their tables (72 MiB: 3 each), no markers, no footer
            assertEquals(6 * 2048, bytes.get("grain tables").asLong(), bytes.toString());
            assertEquals(2 * 12, bytes.get("grain directory").asLong(), bytes.toString());
            assertFalse(bytes.has("footer") || bytes.has("section markers"), bytes.toString());
        } else {
            // VMware's layout: a table per 32 MiB that holds data, the directory, the footer, each behind its marker
            assertEquals(2, tables, "tables in the stream");
            assertEquals(tables * 2048, bytes.get("grain tables").asLong(), bytes.toString());
            assertEquals(512, bytes.get("footer").asLong(), bytes.toString());
            assertEquals(512 * (tables + 3), bytes.get("section markers").asLong(), bytes.toString());
            assertEquals(512 * (tables + 3), 512 * sectionMarkers, "markers found by the sequential read");
        }
        picture.rendersInRsvg();
    }

    /**
     * A Parallels format extension (dirty bitmaps; qemu 7.2 reads it but
     * cannot make one; a cluster of zeros stands for it here, as diskmorph
     * does not read its content): the cluster ext_off names is drawn as
     * such; a damaged ext_off names nothing.
     */
    @Test
    void parallelsFormatExtensionCluster() throws Exception {
        Path img = dir.resolve("e.parallels");
        Qemu.create(img, "parallels", "4M", "cluster_size=64k");
        Qemu.io(img, "parallels", "write -P 1 0 64k");
        long end = Files.size(img);
        assertEquals(0, end % 65536, "qemu's file ends at a cluster");
        try (FileChannel ch = FileChannel.open(img, StandardOpenOption.WRITE)) {
            ch.write(ByteBuffer.wrap(new byte[65536]), end); // the extension's cluster after the data
            ch.write(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(0, end / 512), 56);
        }
        JsonNode bytes = picture(img).bytes;
        assertEquals(65536, bytes.get("format extension").asLong(), bytes.toString());
        assertEquals(65536, bytes.get(HostLayout.DATA).asLong(), bytes.toString());
        try (FileChannel ch = FileChannel.open(img, StandardOpenOption.WRITE)) {
            ch.write(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(0, Long.MIN_VALUE | end / 512), 56);
        }
        bytes = picture(img).bytes;
        assertFalse(bytes.has("format extension"), "an offset past 2^63 names nothing: " + bytes);
        assertEquals(65536, bytes.get(HostLayout.DATA).asLong(), bytes.toString());
    }

    /**
     * A damaged stream whose grain table names two grains over and over: the
     * walk names at most as many grains as the file has sectors, then stops
     * (a hostile file of a few MiB could otherwise ask for 10^8 markers).
     */
    @Test
    void aStreamNamingGrainsAgainAndAgainIsBounded() throws Exception {
        Path src = dir.resolve("d.qcow2");
        Qemu.create(src, "qcow2", "24M");
        Qemu.io(src, "qcow2", "write -P 1 0 1M");
        Path img = dir.resolve("d.vmdk");
        Qemu.img("convert", "-O", "vmdk", "-o", "subformat=streamOptimized", src, img).ok();
        long sectors = Files.size(img) / 512;
        try (FileChannel ch = FileChannel.open(img, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            ByteBuffer h = ByteBuffer.allocate(512).order(ByteOrder.LITTLE_ENDIAN);
            ch.read(h, 0);
            long gd = h.getLong(56) * 512;
            long overhead = h.getLong(64);
            ByteBuffer e = ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN);
            ch.read(e, gd);
            long table = Integer.toUnsignedLong(e.getInt(0)) * 512;
            ByteBuffer t = ByteBuffer.allocate(2048).order(ByteOrder.LITTLE_ENDIAN);
            for (int k = 0; k < 512; k++) {
                t.putInt(4 * k, (int) (overhead + k % 2)); // the first two grains, alternately
            }
            ch.write(t, table);
        }
        assertTrue(512 > sectors, "the table names more grains than the file has sectors: " + sectors);
        JsonNode bytes = Dm.run("layout", "--output=json", img).ok().json().get("bytes");
        assertEquals(12 * sectors, bytes.get("grain markers").asLong(), bytes.toString());
    }

    /** A descriptor file (monolithicFlat): the image's own file is its descriptor; the data lives elsewhere. */
    @Test
    void aVmdkDescriptorFileIsItsDescriptor() throws Exception {
        Path img = dir.resolve("f.vmdk");
        Qemu.create(img, "vmdk", "8M", "subformat=monolithicFlat");
        Qemu.io(img, "vmdk", "write -P 1 0 1M");
        JsonNode bytes = picture(img).bytes;
        assertEquals(Files.size(img), bytes.get("descriptor").asLong(), bytes.toString());
        assertEquals(0, bytes.get(HostLayout.DATA).asLong(), bytes.toString());
    }

    /** The layout's bytes per kind, checked against the SVG's areas and the file's length. */
    private record PictureCheck(JsonNode bytes, Path svg, Element root, Path dir) {
        void rendersInRsvg() throws Exception {
            Path png = dir.resolve("a.png");
            Qemu.run("rsvg-convert", "-o", png.toString(), svg.toString()).ok();
            BufferedImage picture = ImageIO.read(png.toFile());
            assertEquals((int) Double.parseDouble(root.getAttribute("width")), picture.getWidth());
            assertEquals((int) Double.parseDouble(root.getAttribute("height")), picture.getHeight());
            Set<Integer> colours = new HashSet<>();
            for (int y = 0; y < picture.getHeight(); y += 3) {
                for (int x = 0; x < picture.getWidth(); x += 3) {
                    colours.add(picture.getRGB(x, y));
                }
            }
            assertTrue(colours.size() > 6, "the PNG is not blank: " + colours.size() + " colours");
        }
    }

    private PictureCheck picture(Path img) throws Exception {
        Dm.Result json = Dm.run("layout", "--output=json", img).ok();
        JsonNode bytes = json.json().get("bytes");
        Path svg = dir.resolve("a.svg");
        Dm.run("layout", "-o", svg, img).ok();
        Document doc = DocumentBuilderFactory.newInstance().newDocumentBuilder().parse(svg.toFile());
        Element root = doc.getDocumentElement();
        double scale = Double.parseDouble(root.getAttribute("data-bytes-per-area"));
        Map<String, Double> area = new HashMap<>();
        NodeList rects = doc.getElementsByTagName("rect");
        for (int i = 0; i < rects.getLength(); i++) {
            Element r = (Element) rects.item(i);
            if (r.hasAttribute("data-kind")) {
                double a = Double.parseDouble(r.getAttribute("width")) * Double.parseDouble(r.getAttribute("height"));
                area.merge(r.getAttribute("data-kind"), a, Double::sum);
            }
        }
        long fileLength = Files.size(img);
        long sum = 0;
        for (var it = bytes.fields(); it.hasNext(); ) {
            var e = it.next();
            long n = e.getValue().asLong();
            sum += n;
            double drawn = area.getOrDefault(e.getKey(), 0.0) * scale;
            assertEquals(n, drawn, Math.max(1024, n * 1e-4), e.getKey() + ": drawn area vs bytes");
        }
        assertEquals(fileLength, sum, "every byte of the file is drawn once: " + bytes);
        assertEquals(area.keySet().stream().filter(k -> bytes.path(k).asLong() == 0).toList(), List.of(),
                "no kind drawn that has no bytes");
        return new PictureCheck(bytes, svg, root, dir);
    }

    /** A 4 TiB sparse image draws in a bounded number of bins, as quickly as a small one. */
    @Test
    void aSparseFourTebibyteImageIsBinned() throws Exception {
        Path img = dir.resolve("big.qcow2");
        Qemu.create(img, "qcow2", "4T");
        Qemu.io(img, "qcow2", "write -P 1 0 1M", "write -P 2 1T 1M", "write -P 3 3T 1M", "write -P 4 4095G 1M");
        long start = System.nanoTime();
        Dm.Result r = Dm.run("layout", "--output=html", img).ok();
        double seconds = (System.nanoTime() - start) / 1e9;
        assertTrue(seconds < 20, "took " + seconds + " s");
        assertTrue(r.out().startsWith("<!DOCTYPE html>") && r.out().contains("<svg"), r.out().substring(0, 80));
        assertTrue(r.out().length() < 4 << 20, "bounded output: " + r.out().length() + " chars");
        JsonNode bytes = Dm.run("layout", "--output=json", img).ok().json().get("bytes");
        assertEquals(4L << 20, bytes.get(HostLayout.DATA).asLong());
        assertTrue(bytes.get("L2 tables").asLong() >= 4 * 65536, bytes.toString());
    }

    @Test
    void badInputIsOneLine() throws Exception {
        Dm.Result missing = Dm.run("layout", dir.resolve("nope.qcow2"));
        assertNotEquals(0, missing.exitCode());
        missing.oneLineError();
        Path img = dir.resolve("x.qcow2");
        Qemu.create(img, "qcow2", "1M");
        Dm.Result bad = Dm.run("layout", "--output=png", img);
        assertEquals(ExitCodes.USAGE, bad.exitCode(), bad.err());
        assertTrue(bad.oneLineError().contains("svg"), bad.err());
    }
}
