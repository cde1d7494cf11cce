"""From a fill colour to the DC coefficient of every component.

A block whose only non-zero coefficient is DC = d decodes to the flat
level 128 + d * Q0 / 8 (T.81 A.3.3 with the level shift), where Q0 is the
first entry of the component's quantisation table. So the DC that gives a
level v is round(8 * (v - 128) / Q0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import JpegBlankingError
from .markers import JpegHeader

NAMED = {"white": (255, 255, 255), "black": (0, 0, 0), "gray": (128, 128, 128), "grey": (128, 128, 128)}

Fill = str | int | tuple[int, int, int]


@dataclass(frozen=True)
class Target:
    """Target DC of one scan component and the DC range that stays in 0..255."""

    dc: int
    lo: int
    hi: int
    q0: int


def rgb_of(fill: Fill) -> tuple[int, int, int]:
    """Normalise a fill argument to an (r, g, b) triple of 0..255."""
    if isinstance(fill, str):
        try:
            return NAMED[fill.lower()]
        except KeyError:
            raise JpegBlankingError(f"unknown fill colour {fill!r}") from None
    if isinstance(fill, int) and not isinstance(fill, bool):
        fill = (fill, fill, fill)
    try:
        r, g, b = (int(v) for v in fill)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise JpegBlankingError("fill must be a name or an (r, g, b) triple") from None
    if not all(0 <= v <= 255 for v in (r, g, b)):
        raise JpegBlankingError("fill components must be within 0..255")
    return r, g, b


def colour_model(header: JpegHeader, colorspace: str | None) -> str:
    """'GRAY', 'YCbCr' or 'RGB' for the header's components.

    Three components are YCbCr unless the caller says RGB (Aperio
    Photometric=RGB tiles), an Adobe APP14 marker says transform 0, or
    (as libjpeg guesses) there is no JFIF marker and the ids spell 'RGB'.
    """
    n = len(header.components)
    if n == 1:
        return "GRAY"
    if n != 3:
        raise JpegBlankingError(f"JPEG with {n} components is not supported (grey, YCbCr, RGB only)")
    if colorspace is not None:
        key = str(colorspace).lower()
        if key == "rgb":
            return "RGB"
        if key == "ycbcr":
            return "YCbCr"
        raise JpegBlankingError(f"unknown colour space {colorspace!r} (use 'RGB' or 'YCbCr')")
    if header.adobe_transform is not None:
        return "RGB" if header.adobe_transform == 0 else "YCbCr"
    if not header.jfif and [c.ident for c in header.components] == [82, 71, 66]:
        return "RGB"
    return "YCbCr"


def levels(rgb: tuple[int, int, int], model: str) -> tuple[float, ...]:
    """Sample level of every frame component for the colour (JFIF matrix)."""
    r, g, b = rgb
    y = 0.299 * r + 0.587 * g + 0.114 * b
    if model == "GRAY":
        return (y,)
    if model == "RGB":
        return (float(r), float(g), float(b))
    cb = 128 - 0.168735892 * r - 0.331264108 * g + 0.5 * b
    cr = 128 + 0.5 * r - 0.418687589 * g - 0.081312411 * b
    return (y, cb, cr)


def targets(header: JpegHeader, fill: Fill, colorspace: str | None) -> list[Target]:
    """Target per scan component (coding order)."""
    lv = levels(rgb_of(fill), colour_model(header, colorspace))
    by_id = {c.ident: lv[i] for i, c in enumerate(header.components)}
    out = []
    for c in header.scan_components:
        q0 = header.quant[c.tq][0]
        # What an encoder produces for all-0 and all-255 blocks.
        lo = -math.floor(1024 / q0 + 0.5)
        hi = math.floor(1016 / q0 + 0.5)
        dc = math.floor(8 * (by_id[c.ident] - 128) / q0 + 0.5)
        out.append(Target(min(max(dc, lo), hi), lo, hi, q0))
    return out
