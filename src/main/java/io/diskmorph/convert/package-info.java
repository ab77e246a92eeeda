/**
 * In-place conversion, SQLite's rollback journal applied to an image file:
 * {@link io.diskmorph.convert.InPlaceConverter} (the entry points),
 * {@link io.diskmorph.convert.Planner} (read-only: refusals, the survey in
 * target clusters by {@link io.diskmorph.convert.UnitWalker}, the dry run
 * through the target's layout builder, the figures of
 * {@link io.diskmorph.convert.ConversionPlan}),
 * {@link io.diskmorph.convert.Executor} (journal, writes, the commit record,
 * clean-up), {@link io.diskmorph.convert.Journal} (the sidecar journal, its
 * format versions and the file it belongs to), {@link io.diskmorph.convert.Recovery}
 * (recover and rollback), {@link io.diskmorph.convert.OverlayStorage} (the
 * source read through the journal while it is overwritten) and
 * {@link io.diskmorph.convert.Allocators} (first-fit and dense placement);
 * {@link io.diskmorph.convert.FlatPairSwitch} switches a descriptor + flat
 * data file pair to and from raw by renames under a journal of its own. The
 * design comes from QEMU's unmerged in-place conversion RFC (QED &lt;-&gt; qcow2);
 * docs/ARCHITECTURE.md describes the protocol. No class here names a format.
 */
package io.diskmorph.convert;
