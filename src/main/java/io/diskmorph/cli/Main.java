package io.diskmorph.cli;

import io.diskmorph.image.ExitCodes;
import io.diskmorph.image.ErrorText;
import io.diskmorph.image.ImageException;

import java.io.BufferedWriter;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.OutputStreamWriter;
import java.nio.charset.StandardCharsets;
import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Supplier;

/**
 * Entry point. Every failure becomes one line on stderr and a documented
 * exit code (README, "Exit codes"); {@code --debug} adds the stack trace.
 */
public final class Main {
    static boolean debug;

    /** Sub-commands by name, with a one-line summary; only the command being run is instantiated. */
    private static final Map<String, Supplier<Cli.Command>> COMMANDS = new LinkedHashMap<>();

    static {
        COMMANDS.put("info", InfoCommand::new);
        COMMANDS.put("map", MapCommand::new);
        COMMANDS.put("layout", LayoutCommand::new);
        COMMANDS.put("check", CheckCommand::new);
        COMMANDS.put("compare", CompareCommand::new);
        COMMANDS.put("create", CreateCommand::new);
        COMMANDS.put("convert", ConvertCommand::new);
        COMMANDS.put("measure", MeasureCommand::new);
        COMMANDS.put("recover", RecoverCommand::new);
        COMMANDS.put("rollback", RollbackCommand::new);
        COMMANDS.put("demo", DemoCommand::new);
        COMMANDS.put("completion", CompletionCommand::new);
    }

    /** Every command's declaration, by name (the completion script is generated from them). */
    static Map<String, Cli.Declaration> declarations() {
        Map<String, Cli.Declaration> m = new LinkedHashMap<>();
        PrintWriter none = new PrintWriter(java.io.Writer.nullWriter());
        COMMANDS.forEach((n, make) -> m.put(n, make.get().declare(new Cli.CommandSpec(n, none, none))));
        return m;
    }

    private Main() {
    }

    public static void main(String[] args) {
        PrintWriter out = new PrintWriter(new BufferedWriter(new OutputStreamWriter(
                new FileOutputStream(FileDescriptor.out), StandardCharsets.UTF_8), 1 << 16), false);
        PrintWriter err = new PrintWriter(System.err, true);
        int code = run(args, out, err);
        err.flush();
        System.out.flush();
        System.err.flush();
        // halt, not exit: System.exit starts the JDK's logging framework to log the exit (~15 ms).
        // Nothing waits for the shutdown hooks here: the only one, a copy's interrupt hook
        // (PartFile), is removed once the copy is committed or abandoned, before run returns.
        Runtime.getRuntime().halt(code);
    }

    /** Runs one command line; returns the exit code (tests call this directly). */
    public static int run(String[] args, PrintWriter out, PrintWriter err) {
        try {
            return dispatch(args, out, err);
        } finally {
            out.flush();
            err.flush();
        }
    }

    private static int dispatch(String[] args, PrintWriter out, PrintWriter err) {
        debug = false;
        List<String> rest = new ArrayList<>();
        String name = null;
        for (String a : args) {
            if (a.equals("--debug")) {
                debug = true; // accepted anywhere, like a global option
            } else if (name == null && (a.equals("--version") || a.equals("-V"))) {
                out.println("diskmorph " + io.diskmorph.api.Diskmorph.version());
                return ExitCodes.OK;
            } else if (name == null && (a.equals("--help") || a.equals("-h"))) {
                usage(out);
                return ExitCodes.OK;
            } else if (name == null && a.startsWith("-")) {
                err.println("diskmorph: unknown option '" + a + "'");
                err.println("Try 'diskmorph --help' for usage.");
                return ExitCodes.USAGE;
            } else if (name == null) {
                name = a;
            } else {
                rest.add(a);
            }
        }
        if (name == null) {
            usage(err);
            return ExitCodes.USAGE;
        }
        Supplier<Cli.Command> make = COMMANDS.get(name);
        if (make == null) {
            err.println("diskmorph: unknown command '" + name + "'");
            err.println("Try 'diskmorph --help' for usage.");
            return ExitCodes.USAGE;
        }
        Cli.Command command = make.get();
        Cli.CommandSpec io = new Cli.CommandSpec(name, out, err);
        try {
            Cli.bind(command, rest.toArray(String[]::new), io);
        } catch (Cli.HelpShown h) {
            return ExitCodes.OK;
        } catch (Cli.ParameterException e) {
            err.println("diskmorph: " + e.getMessage());
            err.println("Try 'diskmorph " + name + " --help' for usage.");
            return ExitCodes.USAGE;
        }
        try {
            return command.call();
        } catch (Cli.ParameterException e) {
            err.println("diskmorph: " + e.getMessage());
            err.println("Try 'diskmorph " + name + " --help' for usage.");
            return ExitCodes.USAGE;
        } catch (Exception | OutOfMemoryError | StackOverflowError e) {
            String full = ErrorText.noSpace(e);
            if (full != null) {
                // whatever failed on top of it (a clean-up, a thread's abort), a full disk is what the user
                // must hear about
                err.println("diskmorph: " + full);
                if (debug) {
                    e.printStackTrace(err);
                }
                return ExitCodes.NO_SPACE;
            }
            err.println("diskmorph: " + ErrorText.describe(e));
            if (debug) {
                e.printStackTrace(err);
            }
            return failureCode(command, e);
        }
    }

    private static void usage(PrintWriter out) {
        out.println("Usage: diskmorph [--debug] COMMAND [OPTIONS] ...");
        out.println("Virtual disk images: inspect, check, compare, create, convert (also in place).");
        out.println("Commands:");
        COMMANDS.forEach((n, make) -> out.printf("  %-10s %s%n", n,
                make.get().declare(new Cli.CommandSpec(n, out, out)).summary()));
        out.println("'diskmorph COMMAND --help' shows a command's options. --version prints the version.");
    }

    /** Commands that mirror qemu-img keep its failure codes (check 1, compare 2). */
    private static int failureCode(Object command, Throwable ex) {
        if (ex instanceof io.diskmorph.image.InterruptedConversionException ie) {
            return ie.exitCode(); // a pending journal is not a failed check or compare: say 'recover'
        }
        if (command instanceof FailureCode fc) {
            return fc.failureExitCode();
        }
        if (ex instanceof ImageException ie) {
            return ie.exitCode();
        }
        return ExitCodes.ERROR;
    }

    /** Implemented by commands whose failure exit code is fixed by qemu-img compatibility. */
    interface FailureCode {
        int failureExitCode();
    }
}
