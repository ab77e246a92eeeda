/**
 * The command line: {@link io.diskmorph.cli.Main} (dispatch, one-line
 * errors and exit codes), a small option binder where commands declare their
 * options in code ({@link io.diskmorph.cli.Cli}), one class per command with
 * qemu-img's options and output where they overlap, and the launcher's
 * ahead-of-time cache training ({@link io.diskmorph.cli.AotTraining}, driven
 * by the format registry). No format logic lives here; formats are named only
 * in user-facing defaults, help and the demo.
 */
package io.diskmorph.cli;
