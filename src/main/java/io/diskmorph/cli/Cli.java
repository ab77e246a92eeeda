package io.diskmorph.cli;

import java.io.PrintWriter;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import java.util.function.Consumer;

/**
 * A small command-line binder built for start-up time. Commands declare
 * their options in code ({@link Command#declare}): picocli's class files
 * predate class-data sharing and its model cost a quarter of a second per
 * run, and even reading annotations costs a generated proxy class per
 * annotation type (tens of milliseconds, not archivable).
 *
 * <p>Syntax (getopt-like, as qemu-img): {@code -f FMT} or {@code -fFMT},
 * combined flags {@code -pq}, {@code --output=json} or {@code --output json},
 * repeatable options, {@code --} ends options. {@code --help} prints the
 * command's usage.
 */
final class Cli {
    private Cli() {
    }

    /** A sub-command: declares its options, then runs. */
    interface Command extends Callable<Integer> {
        /** Its name, description, options and parameters; {@code io} holds the streams it writes to. */
        Declaration declare(CommandSpec io);
    }

    /** What a running command sees of the command line: its name and streams. */
    static final class CommandSpec {
        private final String name;
        private final PrintWriter out;
        private final PrintWriter err;

        CommandSpec(String name, PrintWriter out, PrintWriter err) {
            this.name = name;
            this.out = out;
            this.err = err;
        }

        PrintWriter getOut() {
            return out;
        }

        PrintWriter getErr() {
            return err;
        }

        String name() {
            return name;
        }
    }

    /** A usage error: reported with a pointer to the command's --help (exit 64). */
    static final class ParameterException extends RuntimeException {
        ParameterException(String message) {
            super(message);
        }
    }

    /** Thrown by {@link #bind} when the user asked for --help (the usage was printed). */
    static final class HelpShown extends RuntimeException {
        HelpShown() {
            super(null, null, false, false);
        }
    }

    private record Opt(String[] names, String label, String description, Consumer<String> set, boolean flag,
                       boolean required) {
        String mainName() {
            return names[names.length - 1];
        }
    }

    private record Param(String label, int min, int max, Consumer<String> set) {
    }

    /** A command's name, description, options (in usage order) and positional parameters (in order). */
    static final class Declaration {
        private final String name;
        private final String[] description;
        private final List<Opt> options = new ArrayList<>();
        private final List<Param> params = new ArrayList<>();

        Declaration(String name, String... description) {
            this.name = name;
            this.description = description;
        }

        /** An option with a value; {@code names} separated by '|', e.g. "-U|--force-share". */
        Declaration option(String names, String label, String description, Consumer<String> set) {
            options.add(new Opt(names.split("\\|"), label, description, set, false, false));
            return this;
        }

        /** An option without a value. */
        Declaration flag(String names, String description, Runnable set) {
            options.add(new Opt(names.split("\\|"), "", description, v -> set.run(), true, false));
            return this;
        }

        /** The option declared last must be given. */
        Declaration required() {
            Opt o = options.removeLast();
            options.add(new Opt(o.names, o.label, o.description, o.set, o.flag, true));
            return this;
        }

        /** Positional parameters: between {@code min} and {@code max} values, in order after the previous ones. */
        Declaration parameters(String label, int min, int max, Consumer<String> set) {
            params.add(new Param(label, min, max, set));
            return this;
        }

        /** Options shared by several commands. */
        Declaration mixin(Consumer<Declaration> shared) {
            shared.accept(this);
            return this;
        }

        String name() {
            return name;
        }

        /** Every option's names, each with the label of its value ("" for a flag), in usage order. */
        java.util.Map<String, String> optionLabels() {
            java.util.Map<String, String> m = new java.util.LinkedHashMap<>();
            for (Opt o : options) {
                for (String n : o.names) {
                    m.put(n, o.flag ? "" : o.label);
                }
            }
            return m;
        }

        String summary() {
            return description.length > 0 ? description[0] : "";
        }

        private Opt find(String n) {
            for (Opt o : options) {
                for (String x : o.names) {
                    if (x.equals(n)) {
                        return o;
                    }
                }
            }
            return null;
        }
    }

    /** Binds {@code args} to the command's declaration; throws {@link ParameterException} or {@link HelpShown}. */
    static void bind(Command command, String[] args, CommandSpec io) {
        Declaration d = command.declare(io);
        List<Opt> seen = new ArrayList<>();
        List<String> positional = new ArrayList<>();
        boolean endOfOptions = false;
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            if (endOfOptions || !a.startsWith("-") || a.equals("-")) {
                positional.add(a);
                continue;
            }
            if (a.equals("--")) {
                endOfOptions = true;
                continue;
            }
            if (a.equals("--help") || a.equals("-h")) {
                printUsage(d, io.getOut());
                throw new HelpShown();
            }
            String name = a;
            String value = null;
            if (a.startsWith("--") && a.contains("=")) {
                name = a.substring(0, a.indexOf('='));
                value = a.substring(a.indexOf('=') + 1);
            }
            Opt o = d.find(name);
            if (o == null && !a.startsWith("--") && a.length() > 2) {
                Opt first = d.find(a.substring(0, 2));
                if (first != null && !first.flag) {
                    o = first; // -fqcow2
                    name = a.substring(0, 2);
                    value = a.substring(2);
                } else if (allFlags(d, a)) {
                    for (int k = 1; k < a.length(); k++) { // -pq
                        Opt f = d.find("-" + a.charAt(k));
                        f.set.accept("true");
                        seen.add(f);
                    }
                    continue;
                }
            }
            if (o == null) {
                throw new ParameterException("unknown option '" + a + "'");
            }
            if (o.flag) {
                if (value != null) {
                    throw new ParameterException("option '" + name + "' takes no value");
                }
                value = "true";
            } else if (value == null) {
                if (i + 1 >= args.length) {
                    throw new ParameterException("option '" + name + "' needs a value ("
                            + (o.label.isEmpty() ? "VALUE" : o.label) + ")");
                }
                value = args[++i];
            }
            o.set.accept(value);
            seen.add(o);
        }
        for (Opt o : d.options) {
            if (o.required && !seen.contains(o)) {
                throw new ParameterException("missing required option '" + o.mainName() + "'");
            }
        }
        int next = 0;
        for (Param p : d.params) {
            int take = Math.min(positional.size() - next, p.max);
            if (take < p.min) {
                throw new ParameterException("missing " + p.label);
            }
            for (int k = 0; k < take; k++) {
                p.set.accept(positional.get(next++));
            }
        }
        if (next < positional.size()) {
            throw new ParameterException("unexpected argument '" + positional.get(next) + "'");
        }
    }

    private static boolean allFlags(Declaration d, String a) {
        for (int k = 1; k < a.length(); k++) {
            Opt f = d.find("-" + a.charAt(k));
            if (f == null || !f.flag) {
                return false;
            }
        }
        return true;
    }

    // ---- value conversions for the setters ----

    static int integer(String value, String option) {
        try {
            return Integer.parseInt(value.trim());
        } catch (NumberFormatException e) {
            throw new ParameterException("invalid value '" + value + "' for " + option + ": not a number");
        }
    }

    static <E extends Enum<E>> E choice(Class<E> type, String value, String option) {
        for (E e : type.getEnumConstants()) {
            if (e.name().equals(value.toLowerCase(Locale.ROOT))) {
                return e;
            }
        }
        throw new ParameterException("invalid value '" + value + "' for " + option + " (expected one of "
                + Arrays.toString(type.getEnumConstants()) + ")");
    }

    static Path path(String value, String what) {
        try {
            return Path.of(value);
        } catch (InvalidPathException e) {
            throw new ParameterException("invalid path '" + value + "' for " + what);
        }
    }

    /** Appends to a list that may not exist yet (repeatable options). */
    static <T> List<T> add(List<T> list, T value) {
        List<T> l = list != null ? list : new ArrayList<>();
        l.add(value);
        return l;
    }

    /** Usage text of one command. */
    static void printUsage(Declaration d, PrintWriter out) {
        StringBuilder usage = new StringBuilder("Usage: diskmorph " + d.name);
        for (Opt o : d.options) {
            boolean req = o.required;
            usage.append(req ? " " : " [").append(o.names[0]);
            if (!o.flag) {
                usage.append(o.mainName().startsWith("--") ? "=" : " ").append(o.label.isEmpty() ? "VALUE" : o.label);
            }
            usage.append(req ? "" : "]");
        }
        for (Param p : d.params) {
            usage.append(' ').append(p.min == 0 ? "[" + p.label + "]" : p.label);
            if (p.max > 1) {
                usage.append(" ...");
            }
        }
        out.println(usage);
        for (String line : d.description) {
            out.println(line);
        }
        for (Opt o : d.options) {
            String names = String.join(", ", o.names);
            if (!o.flag) {
                names += " " + (o.label.isEmpty() ? "VALUE" : o.label);
            }
            out.printf("  %-26s %s%n", names, o.description);
        }
        out.printf("  %-26s %s%n", "--debug", "Show stack traces of errors.");
        out.printf("  %-26s %s%n", "-h, --help", "Show this help.");
    }
}
