"""A generated label image: the research ID as text and as a DataMatrix.

De-identified slides keep a label so that people and scanners can still
tell them apart; the new label carries only the research ID (plus optional
caller text), in a code zxing reads back and in print tesseract reads back.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import zxingcpp
from PIL import Image, ImageDraw, ImageFont

DEFAULT_FONT = "DejaVuSans-Bold.ttf"


def _font(size: int, font_path: str | None) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    for name in (font_path, DEFAULT_FONT, "DejaVuSans.ttf"):
        if not name:
            continue
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    return ImageFont.load_default(size=size)


def _datamatrix(value: str, side: int) -> Image.Image:
    """A DataMatrix of ``value`` no larger than ``side`` px, whole modules only."""
    code = zxingcpp.create_barcode(value, zxingcpp.BarcodeFormat.DataMatrix)
    modules = Image.fromarray(np.asarray(code.to_image(scale=1, add_quiet_zones=True)))
    scale = max(1, side // max(modules.size))
    return modules.resize((modules.width * scale, modules.height * scale), Image.Resampling.NEAREST)


def _fit_text(draw: ImageDraw.ImageDraw, text: str, box_w: int, box_h: int, font_path: str | None):
    """Largest font (by halving search) with ``text`` inside box_w x box_h."""
    lo, hi = 6, max(7, box_h)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        left, top, right, bottom = draw.textbbox((0, 0), text, font=_font(mid, font_path))
        if right - left <= box_w and bottom - top <= box_h:
            lo = mid
        else:
            hi = mid - 1
    return _font(lo, font_path)


def make_label_image(
    research_id: str,
    size: tuple[int, int],
    extra_lines: Sequence[str] = (),
    font_path: str | None = None,
) -> Image.Image:
    """An RGB label of ``size`` (w, h) showing ``research_id`` in print and DataMatrix.

    Landscape sizes put the code left of the text, portrait sizes above it.
    ``extra_lines`` (e.g. "Research Use Only") are printed smaller below the
    ID; they must not carry PHI (nothing here checks).
    """
    if not research_id:
        raise ValueError("research_id must not be empty")
    w, h = size
    img = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(img)
    margin = max(2, min(w, h) // 20)
    landscape = w >= h
    code_side = min(h, w // 2) - 2 * margin if landscape else min(w, h // 2) - 2 * margin
    code = _datamatrix(research_id, max(code_side, 8))
    if landscape:
        img.paste(code, (margin, (h - code.height) // 2))
        tx, ty, tw, th = code.width + 2 * margin, margin, w - code.width - 3 * margin, h - 2 * margin
    else:
        img.paste(code, ((w - code.width) // 2, margin))
        tx, ty, tw, th = margin, code.height + 2 * margin, w - 2 * margin, h - code.height - 3 * margin
    lines = [research_id, *extra_lines]
    row_h = th // (len(lines) + (1 if extra_lines else 0))
    y = ty
    for i, line in enumerate(lines):
        lh = row_h * 2 if (i == 0 and extra_lines) else row_h
        font = _fit_text(draw, line, max(tw, 1), max(int(lh * 0.8), 6), font_path)
        left, top, right, bottom = draw.textbbox((0, 0), line, font=font)
        draw.text((tx - left, y - top + (lh - (bottom - top)) // 2), line, fill="black", font=font)
        y += lh
    return img


def label_pixels(research_id: str, width: int, height: int) -> np.ndarray:
    """The generated label as RGB pixels of the replaced label's size, for every writer (TIFF, MIRAX)."""
    img = make_label_image(research_id, (width, height), extra_lines=("Research Use Only",))
    return np.asarray(img.convert("RGB"))
