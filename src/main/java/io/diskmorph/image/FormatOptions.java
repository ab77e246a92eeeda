package io.diskmorph.image;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

/**
 * Typed access to -o k=v options for one format. Every getter consumes its
 * key; {@link #rejectUnknown} then names whatever the format did not use, so
 * a typo never passes silently.
 */
public final class FormatOptions {
    private final String format;
    private final Map<String, String> values;
    private final Set<String> used = new TreeSet<>();

    public FormatOptions(String format, Map<String, String> values) {
        this.format = format;
        this.values = new LinkedHashMap<>(values);
    }

    /** Parses "a=1,b=2" (qemu's ",," escapes a comma inside a value). */
    public static Map<String, String> parseList(String text) throws InvalidRequestException {
        Map<String, String> out = new LinkedHashMap<>();
        if (text == null || text.isEmpty()) {
            return out;
        }
        StringBuilder cur = new StringBuilder();
        for (int i = 0; i <= text.length(); i++) {
            char c = i < text.length() ? text.charAt(i) : ',';
            if (c == ',' && i + 1 < text.length() && text.charAt(i + 1) == ',') {
                cur.append(',');
                i++;
            } else if (c == ',') {
                String item = cur.toString();
                cur.setLength(0);
                if (item.isEmpty()) {
                    continue;
                }
                int eq = item.indexOf('=');
                if (eq <= 0) {
                    throw new InvalidRequestException("invalid option '" + item + "': expected key=value");
                }
                out.put(item.substring(0, eq), item.substring(eq + 1));
            } else {
                cur.append(c);
            }
        }
        return out;
    }

    public boolean has(String key) {
        return values.containsKey(key);
    }

    public String string(String key, String dflt) {
        used.add(key);
        return values.getOrDefault(key, dflt);
    }

    public long size(String key, long dflt) throws InvalidRequestException {
        used.add(key);
        String v = values.get(key);
        if (v == null) {
            return dflt;
        }
        try {
            return Sizes.parse(v);
        } catch (InvalidRequestException e) {
            throw new InvalidRequestException(format + " option " + key + ": " + e.getMessage());
        }
    }

    public long number(String key, long dflt) throws InvalidRequestException {
        used.add(key);
        String v = values.get(key);
        if (v == null) {
            return dflt;
        }
        try {
            return Long.parseLong(v.trim());
        } catch (NumberFormatException e) {
            throw new InvalidRequestException(format + " option " + key + ": '" + v + "' is not a number");
        }
    }

    public boolean bool(String key, boolean dflt) throws InvalidRequestException {
        used.add(key);
        String v = values.get(key);
        if (v == null) {
            return dflt;
        }
        return switch (v.trim().toLowerCase()) {
            case "on", "true", "yes", "1" -> true;
            case "off", "false", "no", "0" -> false;
            default -> throw new InvalidRequestException(format + " option " + key + ": '" + v
                    + "' is not on or off");
        };
    }

    /** Fails naming the first option no getter asked for. */
    public void rejectUnknown() throws InvalidRequestException {
        for (String k : values.keySet()) {
            if (!used.contains(k)) {
                throw new InvalidRequestException("format " + format + " does not support option '" + k + "'");
            }
        }
    }
}
