package io.diskmorph.api;

import java.util.Optional;

/**
 * What a new image of a format would take (qemu-img measure), and, when
 * asked, what converting the image inside its own file would take.
 *
 * @param required       bytes a copy of the content needs in the target format, or -1 when the format is
 *                       not measured as a copy (VMDK, as qemu-img; the in-place figures are still given)
 * @param fullyAllocated bytes the target needs with every cluster allocated, or -1 likewise
 * @param bitmaps        bytes of persistent dirty bitmaps the copy would carry, 0 when none
 * @param inPlace        the in-place figures, when they were asked for
 */
public record MeasureResult(long required, long fullyAllocated, long bitmaps, Optional<InPlaceMeasure> inPlace) {

    /**
     * What converting the image inside its own file would take: the dry
     * run's figures ({@link InPlacePlan}).
     *
     * @param extraSpace    bytes of free space the conversion needs at most
     * @param movedBytes    guest bytes it moves
     * @param finalLength   the file's length afterwards
     * @param keptBytes     guest bytes that stay where they are
     * @param metadataBytes bytes of new metadata it writes
     */
    public record InPlaceMeasure(long extraSpace, long movedBytes, long finalLength, long keptBytes,
                                 long metadataBytes) {
    }

    static MeasureResult of(io.diskmorph.copy.Measure.Result r) {
        io.diskmorph.copy.Measure.InPlace ip = r.inPlace();
        return new MeasureResult(r.required(), r.fullyAllocated(), r.bitmaps(), Optional.ofNullable(ip == null ? null
                : new InPlaceMeasure(ip.extraSpace(), ip.movedBytes(), ip.finalLength(), ip.keptBytes(),
                ip.metadataBytes())));
    }
}
