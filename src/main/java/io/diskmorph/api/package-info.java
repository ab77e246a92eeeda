/**
 * diskmorph's public Java API: open images and read their details and map,
 * check, compare, create, measure and copy-convert them, and convert them
 * in place (plan, then execute, with progress and cancellation), recover
 * and roll back, as the {@code diskmorph} command does.
 *
 * <p>Start at {@link io.diskmorph.api.Diskmorph}. Results are immutable
 * values (records); failures are checked
 * {@link io.diskmorph.api.DiskmorphException}s whose subclasses stand for
 * the command's exit codes. This package is the only one the module
 * {@code io.diskmorph} exports; everything else may change without notice.
 *
 * <p>Stability: the version is 0.x, so this API may still change between
 * minor versions; each change is listed in the CHANGELOG. Methods, record
 * accessors and exception types that exist in a 0.x release are kept or
 * deprecated for at least one minor version before they go; records may
 * gain components, so build requests from their static factories and
 * {@code with} methods rather than their canonical constructors.
 */
package io.diskmorph.api;
