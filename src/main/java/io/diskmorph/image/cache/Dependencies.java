package io.diskmorph.image.cache;

import java.io.IOException;
import java.util.Arrays;

/**
 * What must be flushed before some metadata is written: the dependencies
 * registered since the last flush (qcow2_cache_set_dependency,
 * qcow2_cache_depends_on_flush), flushed in the order they were added and
 * then forgotten, since what they held is durable. A few at most: a set by
 * identity in a small array.
 */
public final class Dependencies {
    private WriteDependency[] list = new WriteDependency[4];
    private int size;
    private boolean flushing;

    /** {@code before} is flushed before the next write of what owns this list. */
    public void add(WriteDependency before) {
        for (int i = 0; i < size; i++) {
            if (list[i] == before) {
                return;
            }
        }
        if (size == list.length) {
            list = Arrays.copyOf(list, size * 2);
        }
        list[size++] = before;
    }

    /**
     * Flushes every dependency, oldest first; each is forgotten once flushed
     * (a failed flush keeps it and the ones after it). A dependency that
     * leads back here is a bug in the order a driver declared.
     */
    public void flush() throws IOException {
        if (flushing) {
            throw new IllegalStateException("write dependencies form a cycle");
        }
        flushing = true;
        try {
            while (size > 0) {
                list[0].flush();
                System.arraycopy(list, 1, list, 0, --size);
                list[size] = null;
            }
        } finally {
            flushing = false;
        }
    }

    /** Forgets every dependency (the state they ordered was dropped). */
    public void clear() {
        Arrays.fill(list, 0, size, null);
        size = 0;
    }
}
