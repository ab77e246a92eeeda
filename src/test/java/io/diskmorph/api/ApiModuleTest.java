package io.diskmorph.api;

import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.lang.module.ModuleDescriptor;
import java.lang.module.ModuleFinder;
import java.lang.reflect.Constructor;
import java.lang.reflect.Executable;
import java.lang.reflect.Field;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.lang.reflect.ParameterizedType;
import java.lang.reflect.Type;
import java.lang.reflect.WildcardType;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.stream.Collectors;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The module as a user sees it: one exported package, whose signatures name no internal type. */
class ApiModuleTest {
    private static final Path CLASSES = Path.of("target/classes");

    @Test
    void theModuleExportsTheApiOnly() throws IOException {
        // as the module path sees the build's classes (the packages found by scanning the directory)
        ModuleDescriptor d = ModuleFinder.of(CLASSES).find("io.diskmorph").orElseThrow().descriptor();
        assertEquals("io.diskmorph", d.name());
        assertEquals(Set.of("io.diskmorph.api"),
                d.exports().stream().map(ModuleDescriptor.Exports::source).collect(Collectors.toSet()));
        assertTrue(d.exports().stream().noneMatch(ModuleDescriptor.Exports::isQualified));
        assertTrue(d.opens().isEmpty(), "nothing is opened to reflection");
        assertTrue(d.packages().contains("io.diskmorph.convert"), "the internals are in the module, not exported");
    }

    @Test
    void apiSignaturesNameNoInternalType() throws Exception {
        List<String> leaks = new ArrayList<>();
        for (Class<?> c : apiClasses()) {
            if (!Modifier.isPublic(c.getModifiers())) {
                continue;
            }
            if (!isApi(c.getSuperclass())) {
                leaks.add(c.getName() + " extends " + c.getSuperclass().getName());
            }
            for (Type t : c.getGenericInterfaces()) {
                check(t, c.getName() + " implements", leaks);
            }
            for (Field f : c.getFields()) {
                check(f.getGenericType(), c.getName() + "." + f.getName(), leaks);
            }
            List<Executable> members = new ArrayList<>();
            for (Method m : c.getMethods()) {
                if (m.getDeclaringClass() == c) {
                    members.add(m);
                    check(m.getGenericReturnType(), c.getName() + "." + m.getName() + " returns", leaks);
                }
            }
            for (Constructor<?> k : c.getConstructors()) {
                members.add(k);
            }
            for (Executable e : members) {
                for (Type p : e.getGenericParameterTypes()) {
                    check(p, c.getName() + "." + e.getName() + " takes", leaks);
                }
                for (Type x : e.getGenericExceptionTypes()) {
                    check(x, c.getName() + "." + e.getName() + " throws", leaks);
                }
            }
        }
        assertEquals(List.of(), leaks);
    }

    private static List<Class<?>> apiClasses() throws Exception {
        List<Class<?>> out = new ArrayList<>();
        try (Stream<Path> files = Files.list(CLASSES.resolve("io/diskmorph/api"))) {
            for (Path p : files.filter(f -> f.toString().endsWith(".class")).toList()) {
                String name = p.getFileName().toString().replace(".class", "");
                out.add(Class.forName("io.diskmorph.api." + name)); // nested classes too, by binary name
            }
        }
        assertTrue(out.size() > 20, "found the API's classes: " + out.size());
        return out;
    }

    private static void check(Type t, String where, List<String> leaks) {
        if (t instanceof Class<?> c) {
            Class<?> e = c;
            while (e.isArray()) {
                e = e.getComponentType();
            }
            if (!isApi(e)) {
                leaks.add(where + " " + e.getName());
            }
        } else if (t instanceof ParameterizedType p) {
            check(p.getRawType(), where, leaks);
            for (Type a : p.getActualTypeArguments()) {
                check(a, where, leaks);
            }
        } else if (t instanceof WildcardType w) {
            for (Type b : w.getUpperBounds()) {
                check(b, where, leaks);
            }
        }
    }

    /** A type a user may see: the API's own, the JDK's, primitives. */
    private static boolean isApi(Class<?> c) {
        if (c == null || c.isPrimitive()) {
            return true;
        }
        String n = c.getName();
        return n.startsWith("io.diskmorph.api.") || n.startsWith("java.");
    }
}
