"""What OpenSlide makes of the input, taken before the output exists.

The ``reader`` check compares OpenSlide's view of the input with its view of the output. A copy
run can open both at check time; an in-place run cannot: after the header switch the input's
path *is* the output, so the check compared the output with itself. It then refused a rewrite a
copy publishes (an input OpenSlide does not claim, whose output it claims as generic TIFF: the
reader check is not applicable to a copy, but the rewritten file looked like a claimed slide
it cannot open), and it could not see an output that opens as a different vendor than the
input did. In-place mode takes this view before it writes anything; a copy takes it at check
time, the same way, so both modes judge by one rule.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..model import Plan

REGION_MAX = 512  # px each side of the top-left region compared at the smallest kept level


@dataclass(frozen=True)
class SourceView:
    """OpenSlide's reading of the input: whether it claims and opens it, the vendor, the levels,
    the associated images, and the pixels of the region the ``reader`` check compares."""

    claimed: str | None  # the format OpenSlide detects, or None
    refusal: str | None  # claimed but cannot be opened: why the slide's roles cannot be trusted
    vendor: str | None = None
    level_dimensions: tuple[tuple[int, int], ...] = ()
    region_level: int | None = None  # the input level the region was read at
    region: np.ndarray | None = None  # None: unreadable, or no region compared (see ``compares``)

    @property
    def opens(self) -> bool:
        return self.claimed is not None and self.refusal is None


def read_region(slide, xy: tuple[int, int], level: int, size: tuple[int, int]) -> np.ndarray | None:
    """Pixels from OpenSlide, or None when it cannot decode them."""
    import openslide
    try:
        return np.asarray(slide.read_region(xy, level, size))
    except (openslide.OpenSlideError, ValueError, OSError):
        return None


def expected_levels(plan: Plan, input_levels) -> tuple[tuple, list]:
    """The levels OpenSlide must show in the output: the input's, less any whose
    size is only that of images the plan removed (an image OpenSlide took for a
    level, such as a tiled label); and the kept top-level levels, which it must show
    (a list: two levels padded to one tile have one IFD size and are still two levels)."""
    parents = {d.image.index: d.image.extra.get("parent") for d in plan.images}
    kept = {(d.image.width, d.image.height) for d in plan.images if d.action != "remove"}
    removed = {(d.image.width, d.image.height) for d in plan.images if d.action == "remove"} - kept
    kept_levels = [(d.image.width, d.image.height) for d in plan.images
                   if d.action != "remove" and d.image.role == "level" and parents[d.image.index] is None]
    return tuple(tuple(x) for x in input_levels if tuple(x) not in removed), kept_levels


def region_size(dims: tuple[int, int]) -> tuple[int, int]:
    return min(dims[0], REGION_MAX), min(dims[1], REGION_MAX)


def openslide_refusal(src_path: str) -> str | None:
    """Why the ``reader`` check fails on the input alone, whatever the output: OpenSlide knows the
    format and still cannot open the file, so its structure is not what the vendor writes and
    roles read from it (which image is a level, which the macro) cannot be trusted. None when
    OpenSlide opens it or does not claim it. In-place mode asks before it changes the slide."""
    return source_view(src_path, None).refusal


def source_view(src_path: str, plan: Plan | None) -> SourceView:
    """OpenSlide's view of ``src_path``; with a plan, also the pixels the ``reader`` check compares
    (the top-left region of the smallest level the output must show), unless the plan blanks
    regions (blanked pixels differ by design)."""
    import openslide

    from ..openslide_guard import OpenSlideCrash, check, open_slide
    try:
        check(src_path)  # a file that crashes OpenSlide (a C library) is refused, not run in this process
    except OpenSlideCrash:
        return SourceView("a format", "OpenSlide crashes opening the input (hostile or corrupt file): "
                                      "its image roles cannot be trusted")
    try:
        claimed = openslide.OpenSlide.detect_format(src_path)
    except Exception:  # noqa: BLE001 - detection itself failing is "not claimed"
        claimed = None
    if not claimed:
        return SourceView(None, None)
    try:
        slide = open_slide(src_path)
    except Exception as exc:  # noqa: BLE001 - any failure to open is the refusal
        return SourceView(claimed, f"OpenSlide takes the input for {claimed} but cannot read it "
                                   f"({type(exc).__name__}): its image roles cannot be trusted")
    try:
        # vendor and levels first: after a failed read_region the handle raises on every call
        dims = tuple((int(w), int(h)) for w, h in slide.level_dimensions)
        vendor = slide.properties.get("openslide.vendor")
        level = region = None
        if plan is not None and not plan.regions:
            expected, _ = expected_levels(plan, dims)
            if expected:
                level = dims.index(expected[-1])
                region = read_region(slide, (0, 0), level, region_size(expected[-1]))
        return SourceView(claimed, None, vendor, dims, level, region)
    finally:
        slide.close()
