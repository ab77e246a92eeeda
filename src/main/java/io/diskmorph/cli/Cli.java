package io.diskmorph.cli;

import java.io.PrintWriter;
import java.lang.annotation.ElementType;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;
import java.lang.reflect.Field;
import java.lang.reflect.ParameterizedType;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * A small command-line binder in the spirit of picocli's annotations, built
 * for start-up time: picocli's class files predate class-data sharing (class
 * version 49) and its model building costs a quarter of a second in every
 * run, more than a whole {@code qemu-img info}. This binds one command's
 * annotated fields with a few reflective calls.
 *
 * <p>Syntax (getopt-like, as qemu-img): {@code -f FMT} or {@code -fFMT},
 * combined flags {@code -pq}, {@code --output=json} or {@code --output json},
 * repeatable list options, {@code --} ends options. {@code --help} prints
 * the command's usage.
 */
final class Cli {
    private Cli() {
    }

    @Retention(RetentionPolicy.RUNTIME)
    @Target(ElementType.TYPE)
    @interface Command {
        String name();

        String[] description() default {};
    }

    @Retention(RetentionPolicy.RUNTIME)
    @Target({ElementType.FIELD})
    @interface Option {
        String[] names();

        String paramLabel() default "";

        String[] description() default {};

        String defaultValue() default "";

        boolean required() default false;
    }

    /** Positional parameters: {@code index} "0", "1", ...; a List field takes the rest (arity "m..n"). */
    @Retention(RetentionPolicy.RUNTIME)
    @Target(ElementType.FIELD)
    @interface Parameters {
        String index() default "";

        String paramLabel() default "";

        String arity() default "1";

        String[] description() default {};
    }

    /** A field whose own fields are options too (shared option groups). */
    @Retention(RetentionPolicy.RUNTIME)
    @Target(ElementType.FIELD)
    @interface Mixin {
    }

    /** Receives the command's {@link CommandSpec} (its output streams). */
    @Retention(RetentionPolicy.RUNTIME)
    @Target(ElementType.FIELD)
    @interface Spec {
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

        CommandSpec commandLine() {
            return this;
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

    /** A usage error: reported with a pointer to the command's --help. */
    static final class ParameterException extends RuntimeException {
        ParameterException(CommandSpec spec, String message) {
            super(message);
        }

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

    private record Opt(Field field, Object owner, Option spec) {
        boolean flag() {
            return field.getType() == boolean.class || field.getType() == Boolean.class;
        }

        String mainName() {
            return spec.names()[spec.names().length - 1];
        }
    }

    private record Pos(Field field, Parameters spec) {
        int index() {
            return spec.index().isEmpty() ? 0 : Integer.parseInt(spec.index());
        }

        int min() {
            String a = spec.arity();
            return Integer.parseInt(a.contains("..") ? a.substring(0, a.indexOf("..")) : a);
        }

        int max() {
            String a = spec.arity();
            return Integer.parseInt(a.contains("..") ? a.substring(a.indexOf("..") + 2) : a);
        }
    }

    /** Binds {@code args} to {@code command}'s annotated fields. */
    static void bind(Object command, String[] args, CommandSpec io) {
        List<Opt> opts = new ArrayList<>();
        List<Pos> pos = new ArrayList<>();
        collect(command, opts, pos, io);
        pos.sort(Comparator.comparingInt(Pos::index));
        Set<Opt> seen = new HashSet<>();
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
                printUsage(command, io.getOut());
                throw new HelpShown();
            }
            String name = a;
            String value = null;
            if (a.startsWith("--") && a.contains("=")) {
                name = a.substring(0, a.indexOf('='));
                value = a.substring(a.indexOf('=') + 1);
            }
            Opt o = find(opts, name);
            if (o == null && !a.startsWith("--") && a.length() > 2) {
                Opt first = find(opts, a.substring(0, 2));
                if (first != null && !first.flag()) {
                    o = first; // -fqcow2
                    value = a.substring(2);
                } else if (allFlags(opts, a)) {
                    for (int k = 1; k < a.length(); k++) { // -pq
                        Opt f = find(opts, "-" + a.charAt(k));
                        set(f, "true");
                        seen.add(f);
                    }
                    continue;
                }
            }
            if (o == null) {
                throw new ParameterException("unknown option '" + a + "'");
            }
            if (o.flag()) {
                if (value != null) {
                    throw new ParameterException("option '" + name + "' takes no value");
                }
                value = "true";
            } else if (value == null) {
                if (i + 1 >= args.length) {
                    throw new ParameterException("option '" + name + "' needs a value ("
                            + (o.spec.paramLabel().isEmpty() ? "VALUE" : o.spec.paramLabel()) + ")");
                }
                value = args[++i];
            }
            set(o, value);
            seen.add(o);
        }
        for (Opt o : opts) {
            if (!seen.contains(o)) {
                if (o.spec.required()) {
                    throw new ParameterException("missing required option '" + o.mainName() + "'");
                }
                if (!o.spec.defaultValue().isEmpty()) {
                    set(o, o.spec.defaultValue());
                }
            }
        }
        bindPositionals(command, pos, positional);
    }

    private static boolean allFlags(List<Opt> opts, String a) {
        for (int k = 1; k < a.length(); k++) {
            Opt f = find(opts, "-" + a.charAt(k));
            if (f == null || !f.flag()) {
                return false;
            }
        }
        return true;
    }

    private static void bindPositionals(Object command, List<Pos> pos, List<String> values) {
        int next = 0;
        for (Pos p : pos) {
            boolean list = List.class.isAssignableFrom(p.field.getType());
            int available = values.size() - next;
            int take = list ? Math.min(available, p.max()) : Math.min(available, 1);
            if (take < p.min()) {
                throw new ParameterException("missing " + (p.spec.paramLabel().isEmpty() ? "parameter"
                        : p.spec.paramLabel()));
            }
            try {
                p.field.setAccessible(true);
                if (list) {
                    List<Object> l = new ArrayList<>();
                    for (int k = 0; k < take; k++) {
                        l.add(convert(elementType(p.field), values.get(next + k), p.spec.paramLabel()));
                    }
                    p.field.set(command, l);
                } else if (take == 1) {
                    p.field.set(command, convert(p.field.getType(), values.get(next), p.spec.paramLabel()));
                }
            } catch (IllegalAccessException e) {
                throw new IllegalStateException(e);
            }
            next += take;
        }
        if (next < values.size()) {
            throw new ParameterException("unexpected argument '" + values.get(next) + "'");
        }
    }

    private static void collect(Object target, List<Opt> opts, List<Pos> pos, CommandSpec io) {
        for (Class<?> c = target.getClass(); c != null && c != Object.class; c = c.getSuperclass()) {
            for (Field f : c.getDeclaredFields()) {
                try {
                    if (f.isAnnotationPresent(Option.class)) {
                        opts.add(new Opt(f, target, f.getAnnotation(Option.class)));
                    } else if (f.isAnnotationPresent(Parameters.class)) {
                        pos.add(new Pos(f, f.getAnnotation(Parameters.class)));
                    } else if (f.isAnnotationPresent(Spec.class)) {
                        f.setAccessible(true);
                        f.set(target, io);
                    } else if (f.isAnnotationPresent(Mixin.class)) {
                        f.setAccessible(true);
                        Object mixin = f.getType().getDeclaredConstructor().newInstance();
                        f.set(target, mixin);
                        collect(mixin, opts, new ArrayList<>(), io);
                    }
                } catch (ReflectiveOperationException e) {
                    throw new IllegalStateException(e);
                }
            }
        }
    }

    private static Opt find(List<Opt> opts, String name) {
        for (Opt o : opts) {
            for (String n : o.spec.names()) {
                if (n.equals(name)) {
                    return o;
                }
            }
        }
        return null;
    }

    @SuppressWarnings("unchecked")
    private static void set(Opt o, String value) {
        Field f = o.field;
        try {
            f.setAccessible(true);
            if (List.class.isAssignableFrom(f.getType())) {
                List<Object> l = (List<Object>) f.get(o.owner);
                if (l == null) {
                    l = new ArrayList<>();
                    f.set(o.owner, l);
                }
                l.add(convert(elementType(f), value, o.mainName()));
            } else {
                f.set(o.owner, convert(f.getType(), value, o.mainName()));
            }
        } catch (IllegalAccessException e) {
            throw new IllegalStateException(e);
        }
    }

    private static Class<?> elementType(Field f) {
        return (Class<?>) ((ParameterizedType) f.getGenericType()).getActualTypeArguments()[0];
    }

    @SuppressWarnings({"unchecked", "rawtypes"})
    private static Object convert(Class<?> type, String value, String what) {
        try {
            if (type == String.class) {
                return value;
            } else if (type == boolean.class || type == Boolean.class) {
                return Boolean.parseBoolean(value);
            } else if (type == int.class || type == Integer.class) {
                return Integer.parseInt(value.trim());
            } else if (type == long.class || type == Long.class) {
                return Long.parseLong(value.trim());
            } else if (type == Path.class) {
                return Path.of(value);
            } else if (type.isEnum()) {
                try {
                    return Enum.valueOf((Class) type, value);
                } catch (IllegalArgumentException e) {
                    throw new ParameterException("invalid value '" + value + "' for " + what + " (expected one of "
                            + Arrays.toString(type.getEnumConstants()) + ")");
                }
            }
        } catch (NumberFormatException e) {
            throw new ParameterException("invalid value '" + value + "' for " + what + ": not a number");
        } catch (java.nio.file.InvalidPathException e) {
            throw new ParameterException("invalid path '" + value + "' for " + what);
        }
        throw new IllegalStateException("unsupported option type " + type);
    }

    /** Usage text of one command. */
    static void printUsage(Object command, PrintWriter out) {
        Command c = command.getClass().getAnnotation(Command.class);
        List<Opt> opts = new ArrayList<>();
        List<Pos> pos = new ArrayList<>();
        collect(command, opts, pos, new CommandSpec(c.name(), out, out));
        pos.sort(Comparator.comparingInt(Pos::index));
        StringBuilder usage = new StringBuilder("Usage: diskmorph " + c.name());
        for (Opt o : opts) {
            usage.append(o.spec.required() ? " " : " [").append(o.spec.names()[0]);
            if (!o.flag()) {
                usage.append(o.mainName().startsWith("--") ? "=" : " ")
                        .append(o.spec.paramLabel().isEmpty() ? "VALUE" : o.spec.paramLabel());
            }
            usage.append(o.spec.required() ? "" : "]");
        }
        for (Pos p : pos) {
            String label = p.spec.paramLabel().isEmpty() ? "ARG" : p.spec.paramLabel();
            usage.append(' ').append(p.min() == 0 ? "[" + label + "]" : label);
        }
        out.println(usage);
        for (String d : c.description()) {
            out.println(d);
        }
        for (Opt o : opts) {
            String names = String.join(", ", o.spec.names());
            if (!o.flag()) {
                names += " " + (o.spec.paramLabel().isEmpty() ? "VALUE" : o.spec.paramLabel());
            }
            out.printf("  %-26s %s%n", names, String.join(" ", o.spec.description()));
        }
        out.printf("  %-26s %s%n", "--debug", "Show stack traces of errors.");
        out.printf("  %-26s %s%n", "-h, --help", "Show this help.");
    }
}
