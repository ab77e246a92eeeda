package io.diskmorph.cli;

import io.diskmorph.image.ExitCodes;
import io.diskmorph.image.ImageException;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.BufferedWriter;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.OutputStreamWriter;
import java.nio.charset.StandardCharsets;
import java.io.PrintWriter;
import java.nio.file.AccessDeniedException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.NoSuchFileException;

/**
 * Entry point. Every failure becomes one line on stderr and a documented
 * exit code (README, "Exit codes"); {@code --debug} adds the stack trace.
 */
@Command(name = "diskmorph", mixinStandardHelpOptions = true, version = "diskmorph 0.1.0",
        description = "Virtual disk images: inspect, check, compare, create, convert (also in place).",
        subcommands = {InfoCommand.class, MapCommand.class, CheckCommand.class, CompareCommand.class,
                CreateCommand.class, ConvertCommand.class, RecoverCommand.class, RollbackCommand.class,
                DemoCommand.class, MeasureCommand.class})
public final class Main {
    static boolean debug;

    @Option(names = "--debug", description = "Show stack traces of errors.", scope = CommandLine.ScopeType.INHERIT)
    void setDebug(boolean d) {
        debug = d;
    }

    public static void main(String[] args) {
        PrintWriter out = new PrintWriter(new BufferedWriter(new OutputStreamWriter(
                new FileOutputStream(FileDescriptor.out), StandardCharsets.UTF_8), 1 << 16), false);
        System.exit(run(args, out, new PrintWriter(System.err, true)));
    }

    /** Runs one command line; returns the exit code (tests call this directly). */
    public static int run(String[] args, PrintWriter out, PrintWriter err) {
        debug = false;
        CommandLine cl = new CommandLine(new Main());
        cl.setOut(out);
        cl.setErr(err);
        cl.setExecutionExceptionHandler((ex, commandLine, parseResult) -> {
            int code = failureCode(commandLine.getCommand(), ex);
            err.println("diskmorph: " + describe(ex));
            if (debug) {
                ex.printStackTrace(err);
            }
            return code;
        });
        cl.setParameterExceptionHandler((ex, args1) -> {
            err.println("diskmorph: " + ex.getMessage());
            err.println("Try 'diskmorph " + ex.getCommandLine().getCommandName() + " --help' for usage.");
            return ExitCodes.USAGE;
        });
        cl.setExitCodeExceptionMapper(t -> ExitCodes.ERROR);
        int code = cl.execute(args);
        out.flush();
        err.flush();
        return code;
    }

    /** Commands that mirror qemu-img keep its failure codes (check 1, compare 2). */
    private static int failureCode(Object command, Throwable ex) {
        if (command instanceof FailureCode fc) {
            return fc.failureExitCode();
        }
        if (ex instanceof ImageException ie) {
            return ie.exitCode();
        }
        return ExitCodes.ERROR;
    }

    /** One line: the exception's own message, with a plain wording for common I/O errors. */
    static String describe(Throwable ex) {
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

    /** Implemented by commands whose failure exit code is fixed by qemu-img compatibility. */
    interface FailureCode {
        int failureExitCode();
    }
}
