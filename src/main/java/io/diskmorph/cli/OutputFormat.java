package io.diskmorph.cli;

/** --output=human|json, as in qemu-img. */
enum OutputFormat {
    human, json
}
