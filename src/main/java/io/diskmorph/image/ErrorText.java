package io.diskmorph.image;

import java.io.IOException;
import java.nio.file.AccessDeniedException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.NoSuchFileException;
import java.util.List;

/** How a failure is told in one line: the CLI's message and the API's exceptions say the same. */
public final class ErrorText {
    private ErrorText() {
    }

    /**
     * The first "no space left on device" in {@code e}, its causes and the
     * exceptions suppressed on the way (ENOSPC as the JDK reports it, or our
     * own refusal for lack of space), or null.
     */
    public static String noSpace(Throwable e) {
        java.util.ArrayDeque<Throwable> todo = new java.util.ArrayDeque<>(List.of(e));
        java.util.Set<Throwable> seen = java.util.Collections.newSetFromMap(new java.util.IdentityHashMap<>());
        while (!todo.isEmpty()) {
            Throwable t = todo.poll();
            if (!seen.add(t)) {
                continue;
            }
            if (t instanceof io.diskmorph.image.NotEnoughSpaceException) {
                return t.getMessage();
            }
            String m = t.getMessage();
            if (t instanceof IOException && m != null && m.toLowerCase(java.util.Locale.ROOT)
                    .contains("no space left on device")) {
                return m.equals("No space left on device") ? "writing failed: no space left on device" : m;
            }
            if (t.getCause() != null) {
                todo.add(t.getCause());
            }
            todo.addAll(List.of(t.getSuppressed()));
        }
        return null;
    }

    /** One line: the exception's own message, with a plain wording for common I/O errors. */
    public static String describe(Throwable ex) {
        if (ex instanceof NoSuchFileException e) {
            return e.getFile() + ": " + (e.getReason() != null ? e.getReason() : "no such file");
        }
        if (ex instanceof AccessDeniedException e) {
            return e.getFile() + ": permission denied";
        }
        if (ex instanceof FileAlreadyExistsException e) {
            return e.getFile() + ": already exists";
        }
        if (ex instanceof OutOfMemoryError) {
            return "out of memory (an internal bound was too large; please report this image)";
        }
        String msg = ex.getMessage();
        if (msg == null || msg.isBlank()) {
            msg = ex.getClass().getSimpleName();
        } else if (!(ex instanceof IOException)) {
            msg = "internal error: " + ex.getClass().getSimpleName() + ": " + msg;
        }
        int nl = msg.indexOf('\n');
        return nl >= 0 ? msg.substring(0, nl) : msg;
    }
}
