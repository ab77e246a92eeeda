package io.diskmorph.cli;

import io.diskmorph.testing.Dm;
import io.diskmorph.testing.Processes;
import io.diskmorph.testing.Qemu;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.File;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.jar.Attributes;
import java.util.jar.JarEntry;
import java.util.jar.JarOutputStream;
import java.util.jar.Manifest;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The launcher script ({@code ./diskmorph}) as users run it, in an install of
 * its own: a copy of the script beside a target/ with a jar of the compiled
 * classes (so the test never rebuilds the checkout's jar, and works before
 * {@code mvn package} made one).
 */
class LauncherTest {
    @TempDir
    Path dir;
    private Path app;
    private Path work;

    @BeforeEach
    void install() throws IOException {
        app = Files.createDirectories(dir.resolve("app"));
        Path script = app.resolve("diskmorph");
        Files.copy(Path.of("diskmorph"), script);
        Files.setPosixFilePermissions(script, PosixFilePermissions.fromString("rwxr-xr-x"));
        Path target = Files.createDirectories(app.resolve("target"));
        Path classes = null;
        List<String> jars = new ArrayList<>();
        for (String e : System.getProperty("java.class.path").split(File.pathSeparator)) {
            Path p = Path.of(e).toAbsolutePath();
            if (p.endsWith(Path.of("target", "classes"))) {
                classes = p;
            } else if (e.endsWith(".jar")) {
                jars.add(p.toUri().toString());
            }
        }
        assertNotNull(classes, "target/classes is not on the test class path");
        jar(classes, target.resolve("diskmorph.jar"), String.join(" ", jars));
        Path shim = classes.resolveSibling("native").resolve("libdiskmorph.so");
        if (Files.exists(shim)) { // found beside the jar, as in target/ of a checkout
            Files.copy(shim, Files.createDirectories(target.resolve("native")).resolve("libdiskmorph.so"));
        }
        work = Files.createDirectories(dir.resolve("work"));
        Qemu.create(work.resolve("x.qcow2"), "qcow2", "64M");
    }

    /** A jar like the one the build makes: the classes, Main as entry point, the dependencies by reference. */
    private static void jar(Path classes, Path jar, String classPath) throws IOException {
        Manifest mf = new Manifest();
        mf.getMainAttributes().put(Attributes.Name.MANIFEST_VERSION, "1.0");
        mf.getMainAttributes().put(Attributes.Name.MAIN_CLASS, "io.diskmorph.cli.Main");
        mf.getMainAttributes().put(Attributes.Name.CLASS_PATH, classPath);
        mf.getMainAttributes().putValue("Enable-Native-Access", "ALL-UNNAMED");
        try (JarOutputStream out = new JarOutputStream(Files.newOutputStream(jar), mf);
             Stream<Path> files = Files.walk(classes)) {
            for (Path f : files.filter(Files::isRegularFile).sorted().toList()) {
                out.putNextEntry(new JarEntry(classes.relativize(f).toString().replace(File.separatorChar, '/')));
                Files.copy(f, out);
                out.closeEntry();
            }
        }
    }

    /** Runs {@code command} in {@code work} with a clean launcher environment plus {@code env}. */
    private Qemu.Result run(List<String> command, Map<String, String> env) throws IOException {
        ProcessBuilder pb = new ProcessBuilder(command).directory(work.toFile())
                .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")));
        pb.environment().keySet().removeIf(k -> k.startsWith("DISKMORPH_"));
        pb.environment().put("JAVA_HOME", Path.of(Processes.javaBinary()).getParent().getParent().toString());
        pb.environment().put("TMPDIR", Files.createDirectories(dir.resolve("tmp")).toString());
        pb.environment().putAll(env);
        return Processes.run(pb, 120);
    }

    private static Set<String> names(Path d) throws IOException {
        try (Stream<Path> s = Files.list(d)) {
            return new TreeSet<>(s.map(p -> p.getFileName().toString()).toList());
        }
    }

    /**
     * {@code ln -s .../diskmorph ~/bin/diskmorph}: the launcher finds its jar
     * beside the real file, through a relative link, a chain of links and
     * PATH, and leaves nothing beside the link or in the working directory
     * (it used to look for target/ and pom.xml beside the link, run Maven
     * there and fail with "no POM in this directory").
     */
    @Test
    void runsThroughASymlink() throws Exception {
        Path bin = Files.createDirectories(dir.resolve("bin"));
        Files.createSymbolicLink(bin.resolve("diskmorph"), Path.of("..", "app", "diskmorph"));
        Path other = Files.createDirectories(dir.resolve("other"));
        Files.createSymbolicLink(other.resolve("dm"), bin.resolve("diskmorph"));
        Map<String, String> noTraining = Map.of("DISKMORPH_NO_AOT", "1");
        List<List<String>> lines = List.of(
                List.of(bin.resolve("diskmorph").toString(), "info", "x.qcow2"),
                List.of(other.resolve("dm").toString(), "info", "x.qcow2"),
                List.of("/bin/sh", "-c", "diskmorph info x.qcow2"));
        for (List<String> line : lines) {
            Map<String, String> env = new java.util.HashMap<>(noTraining);
            env.put("PATH", bin + File.pathSeparator + System.getenv("PATH"));
            Qemu.Result r = run(line, env);
            assertEquals(0, r.exitCode(), line + ": " + r.err() + r.out());
            assertTrue(r.out().contains("file format: qcow2"), line + ": " + r.out());
            assertEquals("", r.err(), line + ": nothing built, nothing to say");
        }
        assertEquals(Set.of("diskmorph"), names(bin), "nothing beside the link");
        assertEquals(Set.of("dm"), names(other), "nothing beside the second link");
        assertEquals(Set.of("x.qcow2"), names(work), "nothing in the working directory");
    }

    /**
     * A typo ({@code diskmorph inof x}) or an option alone starts no ahead-of-time
     * training and leaves no 10-13 MB cache named after it; a known command
     * does (the control: the same install trains, through the same script).
     */
    @Test
    void onlyKnownCommandsGetACache() throws Exception {
        Path launcher = app.resolve("diskmorph");
        Qemu.Result typo = run(List.of(launcher.toString(), "inof", "x.qcow2"), Map.of());
        assertEquals(64, typo.exitCode(), typo.err());
        assertTrue(typo.err().startsWith("diskmorph: unknown command 'inof'"), typo.err());
        assertEquals(0, run(List.of(launcher.toString(), "--version"), Map.of()).exitCode());
        assertEquals(Set.of(), aotFiles(), "no training started for a typo or an option");

        Qemu.Result info = run(List.of(launcher.toString(), "info", "x.qcow2"), Map.of());
        assertEquals(0, info.exitCode(), info.err());
        assertFalse(aotFiles().isEmpty(), "a known command starts its training");
        // the training runs in the background: wait for every training of this install to end
        long deadline = System.nanoTime() + 180_000_000_000L;
        while (aotFiles().stream().anyMatch(n -> n.endsWith(".lock") || n.contains(".tmp"))
                && System.nanoTime() < deadline) {
            Thread.sleep(200);
        }
        assertEquals(Set.of("diskmorph-info.aot"), aotFiles(), "only the known command got a cache");
        assertEquals(Set.of(), names(dir.resolve("tmp")), "the training's scratch images are gone");
    }

    /**
     * The jar is rebuilt when a source file, a source directory (a file
     * added or removed) or the pom is newer than it, found by the script's
     * own directory walk (it ran find, 10 ms of every start here), hidden
     * files included as find included them; otherwise
     * the jar runs as it is. This install has no pom beside its sources, so
     * a rebuild is seen by its message and its failure.
     */
    @Test
    void rebuildsOnlyWhenSourcesAreNewerThanTheJar() throws Exception {
        Path launcher = app.resolve("diskmorph");
        Path jar = app.resolve("target").resolve("diskmorph.jar");
        Path pkg = Files.createDirectories(app.resolve("src/main/java/io/example"));
        Path source = Files.writeString(pkg.resolve("Example.java"), "class Example {}");
        Path hiddenDir = Files.createDirectories(pkg.resolve(".generated"));
        Path hidden = Files.writeString(hiddenDir.resolve("Hidden.java"), "class Hidden {}");
        FileTime old = FileTime.from(Instant.parse("2026-01-01T00:00:00Z"));
        FileTime built = FileTime.from(Instant.parse("2026-02-01T00:00:00Z"));
        FileTime later = FileTime.from(Instant.parse("2026-03-01T00:00:00Z"));
        Path pom = Files.writeString(app.resolve("pom.xml"), "<project/>");
        List<Path> tree = List.of(source, hidden, hiddenDir, pkg, pkg.getParent(), pkg.getParent().getParent(),
                app.resolve("src/main/java"), app.resolve("src/main"), pom);
        Map<String, String> env = Map.of("DISKMORPH_NO_AOT", "1");
        List<String> info = List.of(launcher.toString(), "info", "x.qcow2");
        record Case(String what, Path newer) {
        }
        for (Case c : List.of(new Case("nothing newer", null), new Case("a nested source file", source),
                new Case("a directory (a file added)", pkg), new Case("the pom", pom),
                new Case("a file in a hidden directory", hidden))) {
            for (Path p : tree) {
                Files.setLastModifiedTime(p, old);
            }
            Files.setLastModifiedTime(jar, built);
            if (c.newer() != null) {
                Files.setLastModifiedTime(c.newer(), later);
            }
            Qemu.Result r = run(info, env);
            if (c.newer() == null) {
                assertEquals(0, r.exitCode(), c.what() + ": " + r.err());
                assertEquals("", r.err(), c.what() + ": nothing built");
            } else {
                assertTrue(r.err().startsWith("diskmorph: building"), c.what() + ": " + r.err());
                assertEquals(1, r.exitCode(), c.what() + ": the build of this pom fails: " + r.err());
            }
        }
    }

    private Set<String> aotFiles() throws IOException {
        Set<String> s = names(app.resolve("target"));
        s.removeIf(n -> !n.contains(".aot"));
        return s;
    }

    /** The launcher's list of commands that get a cache is Main's list of commands. */
    @Test
    void launcherKnowsEveryCommand() throws Exception {
        Matcher m = Pattern.compile("(?m)^\\s*([a-z|]+)\\) aot=").matcher(Files.readString(Path.of("diskmorph")));
        assertTrue(m.find(), "the launcher's case of known commands");
        Set<String> launcher = new TreeSet<>(Arrays.asList(m.group(1).split("\\|")));
        Set<String> main = new TreeSet<>();
        boolean listing = false;
        for (String l : Dm.run("--help").ok().out().lines().toList()) {
            if (l.equals("Commands:")) {
                listing = true;
            } else if (listing && l.startsWith("  ")) {
                main.add(l.strip().split(" +")[0]);
            } else {
                listing = false;
            }
        }
        assertEquals(12, main.size(), "Main's commands, read from --help: " + main);
        assertEquals(main, launcher);
    }
}
