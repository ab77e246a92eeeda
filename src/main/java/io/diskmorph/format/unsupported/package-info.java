/**
 * The formats qemu-img 7.2 probes that diskmorph has no driver for yet,
 * recognised with qemu's own probe rules (the *_probe functions of
 * block/vpc.c, qcow.c, parallels.c, crypto.c, bochs.c,
 * cloop.c, dmg.c; the first 512 bytes, zero padded) and refused by name, so
 * that such a file is never read, compared or converted as raw. A format that
 * gains a driver leaves {@link io.diskmorph.format.unsupported.UnsupportedFormats}.
 */
package io.diskmorph.format.unsupported;
