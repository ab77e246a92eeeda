package io.diskmorph.image;

/** Size strings the way qemu-img reads and prints them ("64K", "1.5G", "1073741824"). */
public final class Sizes {
    private Sizes() {
    }

    /**
     * Parses a size like qemu_strtosz: a decimal number or a 0x hexadecimal
     * one, then an optional binary suffix (k/K, M, G, T, P, E; b/B = bytes).
     * A decimal number may have a fraction when a suffix gives it a scale
     * ("1.5G", "5." alone); it is rounded to a whole byte, half up, like
     * qemu ("1.0005k" = 1025, "1.1M" = 1153434).
     * No BigDecimal: its class initialization alone costs ~20 ms of start-up.
     */
    public static long parse(String text) throws InvalidRequestException {
        String s = text.trim();
        if (s.isEmpty()) {
            throw new InvalidRequestException("empty size");
        }
        if (s.startsWith("+")) {
            s = s.substring(1); // strtoull's sign, which qemu accepts
        }
        if (s.isEmpty()) {
            throw invalid(text);
        }
        int shift = 0;
        char last = s.charAt(s.length() - 1);
        boolean hex = s.length() > 2 && s.charAt(0) == '0' && (s.charAt(1) == 'x' || s.charAt(1) == 'X');
        if (Character.isLetter(last) && !(hex && isHexDigit(last))) {
            shift = switch (Character.toUpperCase(last)) {
                case 'B' -> 0;
                case 'K' -> 10;
                case 'M' -> 20;
                case 'G' -> 30;
                case 'T' -> 40;
                case 'P' -> 50;
                case 'E' -> 60;
                default -> throw invalid(text);
            };
            s = s.substring(0, s.length() - 1);
        }
        if (s.startsWith("-")) {
            throw new InvalidRequestException("invalid size '" + text + "': negative");
        }
        long whole;
        double fraction = 0;
        if (hex) {
            String digits = s.substring(2);
            if (digits.isEmpty() || digits.length() > 16) {
                throw invalid(text);
            }
            for (int i = 0; i < digits.length(); i++) {
                if (!isHexDigit(digits.charAt(i))) {
                    throw invalid(text);
                }
            }
            whole = Long.parseUnsignedLong(digits, 16);
            if (whole < 0) {
                throw new InvalidRequestException("invalid size '" + text + "': too large");
            }
        } else {
            int dot = s.indexOf('.');
            String digits = dot < 0 ? s : s.substring(0, dot);
            String fractionDigits = dot < 0 ? "" : s.substring(dot + 1);
            if (digits.isEmpty() || !allDigits(digits) || !allDigits(fractionDigits)) {
                throw invalid(text);
            }
            whole = digits.length() > 19 ? -1 : Long.parseUnsignedLong(digits);
            if (whole < 0) {
                throw new InvalidRequestException("invalid size '" + text + "': too large");
            }
            fraction = fractionDigits.isEmpty() ? 0 : Double.parseDouble("0." + fractionDigits);
            if (fraction != 0 && shift == 0) {
                throw new InvalidRequestException("invalid size '" + text
                        + "': a fraction needs a k, M, G, T, P or E suffix");
            }
        }
        if (whole > Long.MAX_VALUE >>> shift) {
            throw new InvalidRequestException("invalid size '" + text + "': too large");
        }
        long bytes = (whole << shift) + (long) (fraction * (1L << shift) + 0.5); // qemu rounds half up
        if (bytes < 0) {
            throw new InvalidRequestException("invalid size '" + text + "': too large");
        }
        return bytes;
    }

    private static InvalidRequestException invalid(String text) {
        return new InvalidRequestException("invalid size '" + text
                + "': use a number with an optional k, M, G, T, P or E suffix");
    }

    private static boolean isHexDigit(int c) {
        return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F';
    }

    private static boolean allDigits(String s) {
        for (int i = 0; i < s.length(); i++) {
            if (s.charAt(i) < '0' || s.charAt(i) > '9') {
                return false;
            }
        }
        return true;
    }

    /**
     * qemu's size_to_str: {@code printf("%0.3g %s")} of the size in the
     * largest binary unit that keeps it below 1000 ("10 MiB", "388 KiB",
     * "1.5 GiB", "1.12 KiB" for 1152 bytes: %g rounds the exact value half to
     * even, and prints "1e+03" when rounding reaches 1000).
     */
    public static String human(long bytes) {
        String[] units = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
        int exp = Math.getExponent(Math.max(1.0, bytes / (1000.0 / 1024.0))) + 1; // frexp's exponent
        int unit = Math.min(units.length - 1, Math.max(0, (exp - 1) / 10));
        double v = (double) bytes / (1L << (unit * 10));
        return threeSignificantDigits(v) + " " + units[unit];
    }

    private static final long[] POWERS_OF_TEN = {1, 10, 100, 1000};

    /** C's "%.3g" of 0 or a value in [0.97, 1000): half-even rounding of the exact binary value. */
    static String threeSignificantDigits(double v) {
        if (v == 0) {
            return "0";
        }
        int decimals = v >= 100 ? 0 : v >= 10 ? 1 : v >= 1 ? 2 : 3;
        // v = mantissa * 2^-shift exactly
        long bits = Double.doubleToRawLongBits(v);
        long mantissa = (bits & ((1L << 52) - 1)) | (1L << 52);
        int shift = 1075 - (int) ((bits >>> 52) & 0x7ff);
        long scaled = mantissa * POWERS_OF_TEN[decimals]; // < 2^63
        long rounded;
        if (shift <= 0) {
            rounded = scaled << -shift;
        } else {
            rounded = scaled >>> shift;
            long rest = scaled & ((1L << shift) - 1);
            long half = 1L << (shift - 1);
            if (rest > half || (rest == half && (rounded & 1) == 1)) {
                rounded++;
            }
        }
        if (rounded >= 1000) { // three digits are 100-999 after scaling
            // rounding carried into a fourth digit: one digit fewer after the point
            if (decimals == 0) {
                return "1e+03";
            }
            decimals--;
            rounded = (rounded + 5) / 10; // exactly 1000 here, so no tie is possible
        }
        String digits = Long.toString(rounded);
        String text;
        if (decimals == 0) {
            text = digits;
        } else {
            while (digits.length() <= decimals) {
                digits = "0" + digits;
            }
            text = digits.substring(0, digits.length() - decimals) + "." + digits.substring(digits.length() - decimals);
            int end = text.length();
            while (text.charAt(end - 1) == '0') {
                end--;
            }
            if (text.charAt(end - 1) == '.') {
                end--;
            }
            text = text.substring(0, end);
        }
        return text;
    }
}
