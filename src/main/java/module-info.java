/**
 * diskmorph: virtual disk images (raw, qcow2, QED, VMDK, VHDX, VHD, VDI,
 * qcow, Parallels) with crash-safe in-place format conversion. Only
 * {@link io.diskmorph.api} is exported; the command-line tool
 * ({@code io.diskmorph.cli.Main}) runs from the module as well.
 */
module io.diskmorph {
    requires com.github.luben.zstd_jni;
    // sun.misc.Signal: the command stops an in-place conversion safely on SIGINT/SIGTERM
    requires jdk.unsupported;

    exports io.diskmorph.api;
}
