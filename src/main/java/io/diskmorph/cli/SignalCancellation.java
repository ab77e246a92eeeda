package io.diskmorph.cli;

import io.diskmorph.convert.Cancellation;

import java.io.PrintWriter;
import java.util.List;

/**
 * SIGINT, SIGTERM and SIGHUP during an in-place operation: the first asks
 * the operation to stop at its next safe point (it then puts the original
 * bytes back, or finishes when past its commit point) instead of the JVM's
 * default of exiting on the spot; a second one exits at once, naming
 * {@code diskmorph recover}, which mends whatever state the file is in.
 * The previous handlers come back on {@link #close()}.
 */
final class SignalCancellation implements AutoCloseable {
    private static final List<String> SIGNALS = List.of("INT", "TERM", "HUP");

    final Cancellation cancel = new Cancellation();
    private final List<sun.misc.Signal> installed = new java.util.ArrayList<>();
    private final List<sun.misc.SignalHandler> previous = new java.util.ArrayList<>();
    private volatile int signalNumber;

    SignalCancellation(PrintWriter err, String image) {
        for (String name : SIGNALS) {
            sun.misc.Signal sig = new sun.misc.Signal(name);
            try {
                previous.add(sun.misc.Signal.handle(sig, s -> {
                    if (cancel.requested()) {
                        err.println("diskmorph: interrupted again (SIG" + s.getName() + "); the image may be "
                                + "half-converted: run 'diskmorph recover " + image + "'");
                        err.flush();
                        Runtime.getRuntime().halt(128 + s.getNumber());
                    }
                    signalNumber = s.getNumber();
                    cancel.request("SIG" + s.getName());
                }));
                installed.add(sig);
            } catch (IllegalArgumentException e) {
                // the signal is not available or already used by the JVM (e.g. -Xrs): keep its default
            }
        }
    }

    /** 128 + the signal's number, as a shell reports a death by that signal; 0 when none came. */
    int exitCode() {
        return signalNumber == 0 ? 0 : 128 + signalNumber;
    }

    @Override
    public void close() {
        for (int i = 0; i < installed.size(); i++) {
            sun.misc.Signal.handle(installed.get(i), previous.get(i));
        }
    }
}
