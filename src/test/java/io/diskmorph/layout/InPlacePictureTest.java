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

import javax.xml.parsers.DocumentBuilderFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * {@code convert --in-place --dry-run --layout FILE}: the planned file
 * before and after, side by side, drawn from the dry run: each panel's
 * areas are its bytes, the after panel is the planned file (its length the
 * plan's final length, its guest data the bytes kept and moved, its new
 * metadata the plan's), lines join moved data to where it goes, and only
 * FILE is written.
 */
class InPlacePictureTest {
    @TempDir
    Path dir;

    @ParameterizedTest(name = "{0} -> {1}")
    @CsvSource({"qcow2, qed", "qcow2, raw", "raw, qcow2", "qed, qcow2", "vdi, qcow2"})
    void beforeAndAfterAreThePlan(String from, String to) throws Exception {
        Path img = dir.resolve("p." + from);
        Qemu.create(img, from, "32M");
        Qemu.io(img, from, "write -P 1 20M 3M", "write -P 2 0 1M", "write -P 3 9M 512k");
        byte[] original = Files.readAllBytes(img);
        Path svg = dir.resolve("plan.svg");
        JsonNode plan = Dm.run("convert", "--in-place", "--dry-run", "--output=json", "-O", to, "--layout", svg, img)
                .ok().json();
        assertArrayEquals(original, Files.readAllBytes(img), "a dry run with --layout writes only the picture");
        Document doc = DocumentBuilderFactory.newInstance().newDocumentBuilder().parse(svg.toFile());
        double scale = Double.parseDouble(doc.getDocumentElement().getAttribute("data-bytes-per-area"));
        Map<String, Map<String, Double>> panels = new HashMap<>();
        NodeList rects = doc.getElementsByTagName("rect");
        for (int i = 0; i < rects.getLength(); i++) {
            Element r = (Element) rects.item(i);
            if (r.hasAttribute("data-panel")) {
                double bytes = Double.parseDouble(r.getAttribute("width"))
                        * Double.parseDouble(r.getAttribute("height")) * scale;
                panels.computeIfAbsent(r.getAttribute("data-panel"), k -> new HashMap<>())
                        .merge(r.getAttribute("data-kind"), bytes, Double::sum);
            }
        }
        Map<String, Double> before = panels.get("before");
        Map<String, Double> after = panels.get("after");
        assertEquals(original.length, before.values().stream().mapToDouble(Double::doubleValue).sum(), 1024,
                "the before panel is the file: " + before);
        assertEquals(plan.get("final-length").asLong(), after.values().stream().mapToDouble(Double::doubleValue)
                .sum(), 1024, "the after panel is the planned file: " + after);
        long data = plan.get("kept-bytes").asLong() + plan.get("moved-bytes").asLong();
        assertEquals(data, after.getOrDefault(HostLayout.DATA, 0.0), 1024, "after: the data kept and moved");
        assertEquals(before.getOrDefault(HostLayout.DATA, 0.0), after.getOrDefault(HostLayout.DATA, 0.0),
                Math.max(1024, plan.get("zeroed-data-bytes").asLong()), "the same guest data before and after");
        if (!to.equals("raw")) {
            long metadata = plan.get("metadata-bytes").asLong() + plan.get("header-bytes").asLong();
            double drawn = after.getOrDefault("new " + to + " metadata", 0.0);
            assertTrue(drawn <= metadata + 1024 && drawn > 0, "new metadata " + drawn + " of " + metadata);
        }
        NodeList lines = doc.getElementsByTagName("line");
        long moved = plan.get("moved-bytes").asLong();
        long lineBytes = 0;
        for (int i = 0; i < lines.getLength(); i++) {
            lineBytes += Long.parseLong(((Element) lines.item(i)).getAttribute("data-bytes"));
        }
        assertTrue(lineBytes <= moved, "lines carry at most the moved bytes: " + lineBytes + " of " + moved);
        assertEquals(moved > 0, lines.getLength() > 0, "lines exactly when data moves (" + moved + " moved)");
        Qemu.run("rsvg-convert", "-o", dir.resolve("plan.png").toString(), svg.toString()).ok();
    }

    /** A switch by a footer (raw -> fixed VHD) moves nothing: the after panel has the same data, no lines. */
    @Test
    void aTrailerSwitchKeepsEveryByte() throws Exception {
        Path img = dir.resolve("t.raw");
        Qemu.create(img, "raw", "8M");
        Qemu.io(img, "raw", "write -P 1 1M 2M", "write -P 2 6M 64k");
        Path svg = dir.resolve("t.svg");
        Dm.run("convert", "--in-place", "--dry-run", "-O", "vpc", "-o", "force_size=on", "--layout", svg, img).ok();
        Document doc = DocumentBuilderFactory.newInstance().newDocumentBuilder().parse(svg.toFile());
        double scale = Double.parseDouble(doc.getDocumentElement().getAttribute("data-bytes-per-area"));
        Map<String, Double> data = new HashMap<>();
        NodeList rects = doc.getElementsByTagName("rect");
        for (int i = 0; i < rects.getLength(); i++) {
            Element r = (Element) rects.item(i);
            if (HostLayout.DATA.equals(r.getAttribute("data-kind"))) {
                data.merge(r.getAttribute("data-panel"), Double.parseDouble(r.getAttribute("width"))
                        * Double.parseDouble(r.getAttribute("height")) * scale, Double::sum);
            }
        }
        assertEquals(data.get("before"), data.get("after"), 1024, "the same data before and after: " + data);
        assertTrue(data.get("after") >= (2 << 20), data.toString());
        assertEquals(0, doc.getElementsByTagName("line").getLength(), "nothing moves");
    }

    @Test
    void layoutNeedsADryRun() throws Exception {
        Path img = dir.resolve("r.raw");
        Qemu.create(img, "raw", "4M");
        byte[] original = Files.readAllBytes(img);
        Dm.Result r = Dm.run("convert", "--in-place", "-O", "qcow2", "--layout", dir.resolve("x.svg"), img);
        assertEquals(ExitCodes.USAGE, r.exitCode(), r.err());
        assertTrue(r.oneLineError().contains("--dry-run"), r.err());
        assertArrayEquals(original, Files.readAllBytes(img));
        assertFalse(Files.exists(dir.resolve("x.svg")));
    }
}
