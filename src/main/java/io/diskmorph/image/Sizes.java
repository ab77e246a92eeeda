package io.diskmorph.image;

import java.math.BigDecimal;

/** Size strings the way qemu-img reads and prints them ("64K", "1.5G", "1073741824"). */
public final class Sizes {
    private Sizes() {
    }

    /** Parses a size with an optional binary suffix (k/K, M, G, T, P, E; b/B = bytes). */
    public static long parse(String text) throws InvalidRequestException {
        String s = text.trim();
        if (s.isEmpty()) {
            throw new InvalidRequestException("empty size");
        }
        int shift = 0;
        char last = s.charAt(s.length() - 1);
        if (Character.isLetter(last)) {
            shift = switch (Character.toUpperCase(last)) {
                case 'B' -> 0;
                case 'K' -> 10;
                case 'M' -> 20;
                case 'G' -> 30;
                case 'T' -> 40;
                case 'P' -> 50;
                case 'E' -> 60;
                default -> throw new InvalidRequestException("invalid size '" + text
                        + "': use a number with an optional k, M, G, T, P or E suffix");
            };
            s = s.substring(0, s.length() - 1);
        }
        try {
            BigDecimal v = new BigDecimal(s);
            if (v.signum() < 0) {
                throw new InvalidRequestException("invalid size '" + text + "': negative");
            }
            BigDecimal bytes = v.multiply(BigDecimal.valueOf(2).pow(shift));
            if (bytes.compareTo(BigDecimal.valueOf(Long.MAX_VALUE)) > 0) {
                throw new InvalidRequestException("invalid size '" + text + "': too large");
            }
            if (bytes.stripTrailingZeros().scale() > 0) {
                throw new InvalidRequestException("invalid size '" + text + "': not a whole number of bytes");
            }
            return bytes.longValueExact();
        } catch (NumberFormatException | ArithmeticException e) {
            throw new InvalidRequestException("invalid size '" + text
                    + "': use a number with an optional k, M, G, T, P or E suffix");
        }
    }

    /**
     * qemu's size_to_str: three significant digits, switching to the next
     * binary unit once the number reaches 1000 ("10 MiB", "388 KiB", "1.5 GiB").
     */
    public static String human(long bytes) {
        String[] units = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
        int exp = Math.getExponent(Math.max(1.0, bytes / (1000.0 / 1024.0))) + 1; // frexp's exponent
        int unit = Math.min(units.length - 1, Math.max(0, (exp - 1) / 10));
        double v = (double) bytes / (1L << (unit * 10));
        String num = new BigDecimal(v).round(new java.math.MathContext(3)).stripTrailingZeros().toPlainString();
        return num + " " + units[unit];
    }
}
