"""Regions to blank, given in level-0 pixels, shared by every driver.

Why here: parsing ``--region`` and mapping a level-0 box onto a smaller image
is the same arithmetic for TIFF levels and DICOM instances; the drivers'
blanking code (``wsideid.tiff_family.redaction``, ``wsideid.dicom.redact``) imports it
from this low-level module instead of from each other.
"""

from __future__ import annotations

import math

from .errors import WsideidError

Box = tuple[int, int, int, int]  # x, y, w, h


class RedactionError(WsideidError):
    """A region cannot be blanked losslessly in this slide."""


def parse_region(text: str) -> Box:
    try:
        x, y, w, h = (int(v) for v in text.split(","))
    except ValueError:
        raise RedactionError(f"a region is X,Y,W,H in level-0 pixels (got {text!r})") from None
    if w <= 0 or h <= 0 or x < 0 or y < 0:
        raise RedactionError(f"region {text!r} must have a positive size and lie at x, y >= 0")
    return (x, y, w, h)


def scale_box(box: Box, sx: float, sy: float, w: int, h: int) -> Box | None:
    """``box`` scaled by (sx, sy) and clipped to a w x h image, grown outward to whole
    pixels (a blanked area never shrinks); None when nothing of it lies inside."""
    x0, y0 = math.floor(box[0] * sx), math.floor(box[1] * sy)
    x1, y1 = math.ceil((box[0] + box[2]) * sx), math.ceil((box[1] + box[3]) * sy)
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if x1 <= x0 or y1 <= y0:
        return None
    return (x0, y0, x1 - x0, y1 - y0)
