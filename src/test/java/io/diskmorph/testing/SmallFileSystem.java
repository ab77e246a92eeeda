package io.diskmorph.testing;

import org.junit.jupiter.api.extension.AfterEachCallback;
import org.junit.jupiter.api.extension.ExtensionContext;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * A tmpfs of a few MiB for tests that fill a file system (ENOSPC, "not
 * enough free space" plans), unmounted after each test. Register it with
 * {@code @RegisterExtension final SmallFileSystem fs = new SmallFileSystem();}.
 */
public final class SmallFileSystem implements AfterEachCallback {
    private Path mount;

    /** Mounts a tmpfs of {@code size} (mount's syntax: "16M") at {@code under}/fs and returns that directory. */
    public Path mount(Path under, String size) throws IOException {
        mount = Files.createDirectories(under.resolve("fs"));
        Qemu.run("mount", "-t", "tmpfs", "-o", "size=" + size, "tmpfs", mount.toString()).ok();
        return mount;
    }

    @Override
    public void afterEach(ExtensionContext context) {
        if (mount != null) {
            Qemu.run("umount", mount.toString());
            mount = null;
        }
    }
}
