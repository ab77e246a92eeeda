package io.diskmorph.cli;

import io.diskmorph.image.DiskImage;
import io.diskmorph.image.ImageInfo;
import io.diskmorph.image.Images;
import io.diskmorph.image.Sizes;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

final class InfoCommand implements Cli.Command {
    private Cli.CommandSpec spec;
    private final ImageOptions image = new ImageOptions();
    OutputFormat output = OutputFormat.human;
    boolean backingChain;
    Path path;

    @Override
    public Cli.Declaration declare(Cli.CommandSpec io) {
        spec = io;
        return new Cli.Declaration("info", "Show image information (qemu-img info).",
                "A fixed VHD probes as raw, as in qemu-img (its only magic is at the end of the file): name it "
                        + "with -f vpc.")
                .mixin(image::declare)
                .option("--output", "human|json", "Output format.",
                        v -> output = Cli.choice(OutputFormat.class, v, "--output"))
                .flag("--backing-chain", "Show every image of the backing chain.", () -> backingChain = true)
                .parameters("IMAGE", 1, 1, v -> path = Cli.path(v, "IMAGE"));
    }

    @Override
    public Integer call() throws Exception {
        PrintWriter out = spec.getOut();
        // info never follows a chain unless asked (hostile backing names stay unopened)
        try (DiskImage img = Images.open(path, image.readOnly().withFollowBacking(backingChain))) {
            List<ImageInfo> infos = new ArrayList<>();
            for (DiskImage layer = img; layer != null; layer = backingChain ? layer.backing() : null) {
                infos.add(layer.info());
            }
            if (output == OutputFormat.json) {
                if (backingChain) {
                    out.println(Json.pretty(infos.stream().map(InfoCommand::toJson).toList()));
                } else {
                    out.println(Json.pretty(toJson(infos.get(0))));
                }
            } else {
                for (int i = 0; i < infos.size(); i++) {
                    if (i > 0) {
                        out.println();
                    }
                    human(out, infos.get(i));
                }
            }
        }
        return 0;
    }

    static Map<String, Object> toJson(ImageInfo i) {
        Map<String, Object> m = new LinkedHashMap<>();
        if (i.backingFormat() != null) {
            m.put("backing-filename-format", i.backingFormat());
        }
        if (!i.snapshots().isEmpty()) {
            List<Object> snaps = new ArrayList<>();
            for (ImageInfo.SnapshotInfo s : i.snapshots()) {
                Map<String, Object> sm = new LinkedHashMap<>();
                if (s.icount() >= 0) { // qemu omits it for snapshots that predate the field
                    sm.put("icount", s.icount());
                }
                sm.put("vm-clock-nsec", s.vmClockNsec() % 1_000_000_000L);
                sm.put("name", s.name());
                sm.put("date-sec", s.dateSec());
                sm.put("date-nsec", s.dateNsec());
                sm.put("vm-clock-sec", s.vmClockNsec() / 1_000_000_000L);
                sm.put("id", s.id());
                sm.put("vm-state-size", s.vmStateSize());
                snaps.add(sm);
            }
            m.put("snapshots", snaps);
        }
        m.put("virtual-size", i.virtualSize());
        m.put("filename", i.filename());
        if (i.clusterSize() > 0) {
            m.put("cluster-size", i.clusterSize());
        }
        m.put("format", i.format());
        if (i.actualSize() >= 0) {
            m.put("actual-size", i.actualSize());
        }
        if (i.encrypted()) {
            m.put("encrypted", true);
        }
        if (i.formatSpecific() != null) {
            Map<String, Object> fs = new LinkedHashMap<>();
            fs.put("type", i.format());
            fs.put("data", i.formatSpecific());
            m.put("format-specific", fs);
        }
        if (i.backingFilename() != null) {
            m.put("full-backing-filename", i.fullBackingFilename());
            m.put("backing-filename", i.backingFilename());
        }
        if (i.dirtyFlagShown()) {
            m.put("dirty-flag", i.dirty());
        }
        return m;
    }

    private static void human(PrintWriter out, ImageInfo i) {
        out.println("image: " + i.filename());
        out.println("file format: " + i.format());
        out.println("virtual size: " + Sizes.human(i.virtualSize()) + " (" + i.virtualSize() + " bytes)");
        out.println("disk size: " + (i.actualSize() >= 0 ? Sizes.human(i.actualSize()) : "unavailable"));
        if (i.clusterSize() > 0) {
            out.println("cluster_size: " + i.clusterSize());
        }
        if (i.encrypted()) {
            out.println("encrypted: yes");
        }
        if (i.backingFilename() != null) {
            String line = "backing file: " + i.backingFilename();
            if (!i.backingFilename().equals(i.fullBackingFilename())) {
                line += " (actual path: " + i.fullBackingFilename() + ")";
            }
            out.println(line);
            if (i.backingFormat() != null) {
                out.println("backing file format: " + i.backingFormat());
            }
        }
        if (!i.snapshots().isEmpty()) {
            out.println("Snapshot list:");
            out.printf("%-10s%-17s%8s%20s%13s%11s%n", "ID", "TAG", "VM SIZE", "DATE", "VM CLOCK", "ICOUNT");
            for (ImageInfo.SnapshotInfo s : i.snapshots()) {
                String date = java.time.format.DateTimeFormatter.ofPattern("yyyy-MM-dd HH:mm:ss")
                        .format(java.time.LocalDateTime.ofEpochSecond(s.dateSec(), 0,
                                java.time.ZoneId.systemDefault().getRules()
                                        .getOffset(java.time.Instant.ofEpochSecond(s.dateSec()))));
                // qemu 7.2's bdrv_snapshot_dump: hours at least two digits (more when they need them),
                // right-aligned in 13 columns; an entry without icount leaves that column blank
                long secs = s.vmClockNsec() / 1_000_000_000L;
                String clock = String.format(java.util.Locale.ROOT, "%02d:%02d:%02d.%03d", (int) (secs / 3600), (int) (secs / 60 % 60),
                        (int) (secs % 60), (int) (s.vmClockNsec() / 1_000_000 % 1000));
                out.printf("%-9s %-16s %8s%20s%13s%11s%n", s.id(), s.name(), Sizes.human(s.vmStateSize()), date,
                        clock, s.icount() == -1 ? "" : String.valueOf(s.icount()));
            }
        }
        if (i.formatSpecific() != null && !i.formatSpecific().isEmpty()) {
            out.println("Format specific information:");
            dump(out, 1, i.formatSpecific());
        }
    }

    /**
     * qemu's dump_qdict / dump_qlist: four spaces per level, dashes in keys
     * as spaces, a nested map or list on the lines below its key ("[0]:" per
     * list item), anything else after it.
     */
    private static void dump(PrintWriter out, int level, Object value) {
        String indent = " ".repeat(4 * level);
        if (value instanceof Map<?, ?> map) {
            for (Map.Entry<?, ?> e : map.entrySet()) {
                item(out, level, indent + String.valueOf(e.getKey()).replace('-', ' '), e.getValue());
            }
        } else if (value instanceof List<?> list) {
            for (int k = 0; k < list.size(); k++) {
                item(out, level, indent + "[" + k + "]", list.get(k));
            }
        }
    }

    private static void item(PrintWriter out, int level, String label, Object value) {
        if (value instanceof Map<?, ?> || value instanceof List<?>) {
            out.println(label + ":");
            dump(out, level + 1, value);
        } else {
            out.println(label + ": " + value);
        }
    }
}
