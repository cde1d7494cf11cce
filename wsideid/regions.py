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


READBACK_WINDOW = 1024  # a blanked region is read back in windows of at most this many pixels a side


def level_readers(slide) -> list:
    """(name, size, read(x, y, w, h) -> RGB array or None) for every level an OpenSlide slide
    shows, in the level's own pixels: a blanked region is read back on each (``box_spread``)."""
    out = []
    for lv, size in enumerate(slide.level_dimensions):
        def read(x, y, w, h, lv=lv, ds=slide.level_downsamples[lv]):
            try:
                import numpy as np
                return np.asarray(slide.read_region((int(round(x * ds)), int(round(y * ds))), lv, (w, h)))[..., :3]
            except Exception:  # noqa: BLE001 - OpenSlide raises on corrupt tiles: unreadable, judged by the caller
                return None
        out.append((f"level {lv}", tuple(size), read))
    return out


def box_spread(read, box: Box) -> int | None:
    """Largest minus smallest value of any channel over a box's pixels, read in bounded windows;
    None when a window cannot be read."""
    import numpy as np
    x, y, w, h = box
    lo, hi = np.full(3, 255), np.zeros(3, int)
    for wy in range(y, y + h, READBACK_WINDOW):
        for wx in range(x, x + w, READBACK_WINDOW):
            px = read(wx, wy, min(READBACK_WINDOW, x + w - wx), min(READBACK_WINDOW, y + h - wy))
            if px is None:
                return None
            # per channel over the whole window: numpy reduces over axes (0, 1) of an
            # (h, w, 3) view about 15 times slower (30 vs 2 ms for 1024 x 1024)
            chans = range(px.shape[-1]) if px.ndim == 3 else [None]
            mins = [int((px if c is None else px[..., c]).min()) for c in chans]
            maxs = [int((px if c is None else px[..., c]).max()) for c in chans]
            lo, hi = np.minimum(lo, mins), np.maximum(hi, maxs)
    return int((hi.astype(int) - lo.astype(int)).max())


def inset(box: Box | None, px: int) -> Box | None:
    """``box`` shrunk by ``px`` on every side (chroma upsampling blends a blanked area's last
    pixels with their neighbours); None when nothing is left."""
    if box is None or box[2] <= 2 * px or box[3] <= 2 * px:
        return None
    return (box[0] + px, box[1] + px, box[2] - 2 * px, box[3] - 2 * px)


MIN_READBACK = 16  # px a side: a smaller region holds no block wholly inside, it cannot read back flat


def flat_regions(regions: list[Box], targets: list, edge, limit: int) -> list[tuple[str, bool, str]]:
    """The ``regions-blank`` read-back shared by the drivers that read pixels back: for each
    region, (part, ok, detail) after reading every pixel of it, less ``edge(size)`` px that
    chroma upsampling blends, on every target (name, size, read, level-0 size), which must
    stay within ``limit`` grey levels. A region no target shows, or one under MIN_READBACK px,
    fails: a check that read nothing says nothing."""
    rows, too_small = [], 0
    for k, region in enumerate(regions):
        if region[2] < MIN_READBACK or region[3] < MIN_READBACK:
            too_small += 1
            continue
        worst, images, unreadable = 0, 0, []
        for name, (w, h), read, (w0, h0) in targets:
            box = inset(scale_box(region, w / w0, h / h0, w, h), edge((w, h)))
            if box is None:
                continue  # a few pixels at this size: nothing inside the blended edge
            spread = box_spread(read, box)
            if spread is None:
                unreadable.append(name)
                continue
            worst, images = max(worst, spread), images + 1
        if unreadable:
            rows.append((f"region {k + 1}", False, f"cannot read the blanked region on {unreadable}"))
        else:
            rows.append((f"region {k + 1}", images > 0 and worst <= limit,
                         f"whole region on {images} image(s): spread {worst} grey levels"))
    if too_small:
        rows.append(("", False, f"{too_small} region(s) under {MIN_READBACK} px: too small to be read back flat"))
    return rows
