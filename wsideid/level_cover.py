"""Which reduced pyramid levels the residual scan skips: those a smaller level of the same pyramid covers.

Why: the residual detectors read every kept image reduced to at most
``tiff.pixels.OUTPUT_SCAN_PIXELS`` (and then to ``detect.residual.MAX_LONG_SIDE``).
A reduced level larger than that, read so, shows the slide's field of view at
no more detail than a smaller level of the same pyramid that itself has at
least that many pixels: reading both decodes the same picture twice, and the
larger one's entropy decoding was most of the residual scan's cost (2.5 of 4.1
CPU s on a 2 GB slide, the 15,360 px level's 3,600 tiles). So (team decision,
issue 14) a reduced level is skipped when a smaller, *scanned* level of the same
pyramid

- has the same field of view (its aspect ratio within the rounding of halving:
  less than one pixel on each side),
- has at least ``scan_pixels`` pixels, and
- reaches the detectors at least as large as the skipped level would: each is
  read reduced by a power of two to fit the reader's budget, then by a whole
  factor to ``MAX_LONG_SIDE``; a pyramid whose levels are not a power of two
  apart (or rounded to tiles) can give the larger level the sharper view, and
  it is then scanned. The budget is ``OUTPUT_SCAN_PIXELS``, which every
  kept-image read honours (``slide_scan.scan_images`` sets ``scan_limit``, the
  TIFF and DICOM readers take their factor from ``tiff.pixels.scan_factor``).

A pyramid is what the driver says it is (a TIFF's top-level images, the SubIFD
levels of one image, a DICOM series). Two levels of one size in a pyramid are
planes the driver did not tell apart (focal planes, channels, optical paths):
which smaller plane shows the same picture is unknown, so such a pyramid
covers nothing and is scanned whole, as before. Only role "level" images are
given here; thumbnails, macros, labels and unknown images are always scanned.

Skipped levels are recorded (``slide_scan.ImageScan.covered_by``, the audit's
"covered by level N at the scan resolution"), never silently dropped. The limit
this accepts is stated in docs/threat-model.md: text written into one large
level only, and absent from the smaller ones, is not seen (level 0 never was).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Hashable, Sequence


@dataclass(frozen=True)
class LevelSize:
    """A reduced level the residual scan would read: the caller's key (its image index),
    its size, and the pyramid it belongs to (levels of different pyramids never cover)."""

    key: int
    width: int
    height: int
    pyramid: Hashable = ""

    @property
    def pixels(self) -> int:
        return self.width * self.height


def same_view(large: LevelSize, small: LevelSize) -> bool:
    """``small`` is ``large`` scaled by one factor with each side rounded by less than a pixel:
    with w = W/f + a, h = H/f + b (|a|, |b| < 1), |w*H - h*W| = |a*H - b*W| < W + H."""
    if min(large.width, large.height, small.width, small.height) <= 0:
        return False
    return abs(small.width * large.height - small.height * large.width) < large.width + large.height


def _view(level: LevelSize, budget: int) -> tuple[int, int]:
    """The size the kept-image detectors see ``level`` at: reduced by a power of two to fit
    the reader's budget (``tiff.pixels``), then by a whole factor to ``MAX_LONG_SIDE``
    (``detect.residual.scan_kept_image``)."""
    from .detect.residual import MAX_LONG_SIDE
    from .tiff.pixels import reduction_factor
    f = reduction_factor(level.width, level.height, budget)
    w, h = -(-level.width // f), -(-level.height // f)
    k = -(-max(w, h) // MAX_LONG_SIDE)
    return -(-w // k), -(-h // k)


def _no_sharper(small: tuple[int, int], large: tuple[int, int]) -> bool:
    """The small level's view is at least the large one's (one pixel of rounding)."""
    return small[0] >= large[0] - 1 and small[1] >= large[1] - 1


def covering(levels: Sequence[LevelSize], scan_pixels: int | None = None) -> dict[int, int]:
    """key of each skipped level -> key of the scanned level that covers it (module docstring).

    Levels are decided smallest first, so a level is only ever covered by one that is
    itself scanned."""
    if scan_pixels is None:
        from .tiff.pixels import OUTPUT_SCAN_PIXELS
        scan_pixels = OUTPUT_SCAN_PIXELS
    planes = Counter((lv.pyramid, lv.width, lv.height) for lv in levels)
    ambiguous = {p for (p, _w, _h), n in planes.items() if n > 1}
    scanned: list[tuple[LevelSize, tuple[int, int]]] = []
    out: dict[int, int] = {}
    for lv in sorted(levels, key=lambda lv: (lv.pixels, lv.key)):
        view = _view(lv, scan_pixels)
        cover = None
        if lv.pyramid not in ambiguous:
            cover = next((s for s, s_view in scanned  # smallest first
                          if s.pyramid == lv.pyramid and scan_pixels <= s.pixels < lv.pixels
                          and same_view(lv, s) and _no_sharper(s_view, view)), None)
        if cover is None:
            scanned.append((lv, view))
        else:
            out[lv.key] = cover.key
    return out


def covered_note(level: int) -> str:
    """The audit's words for a skipped level (``level``: the covering image's output index)."""
    return f"covered by level {level} at the scan resolution"
