package io.diskmorph.api;

import java.time.Duration;

/**
 * A finished in-place conversion.
 *
 * @param plan    the plan as it was carried out, with the time of every phase
 * @param elapsed wall time from opening the image to the end
 */
public record InPlaceResult(InPlacePlan plan, Duration elapsed) {
}
