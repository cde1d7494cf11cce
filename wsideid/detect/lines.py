"""Reading text lines found by :mod:`.textregions`, with both engines.

Each line is cut out, scaled to a fixed height and tried both ways up
(0/180 deg, or 90/270 for a line running top-to-bottom): cheaper than
tesseract's four whole-image orientation probes, and exact about where
each reading came from. Tesseract reads all crops in one call (stacked on
one sheet); PP-OCR reads them in one short-lived worker (:mod:`.ppocr`).
A reading counts as *sure* above an engine-specific confidence floor.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

from PIL import Image, ImageOps

from . import ppocr
from .textregions import TextRegion

LINE_HEIGHT = 40  # px: each line is scaled to this height for reading
TESSERACT_MIN_CONFIDENCE = 0.6
PPOCR_MIN_CONFIDENCE = 0.85  # PP-OCR is confident even on junk; demand more
# One call reads every line: ~1 s on an idle core. The limit only guards
# against a hang; at 10 s (the per-probe limit) an 8-fold loaded machine
# timed out and sent clean slides to review.
SHEET_TIMEOUT_S = 40


@dataclass(frozen=True)
class Reading:
    text: str
    confidence: float
    engine: str  # tesseract | ppocr

    @property
    def weight(self) -> float:
        """Confident alphanumerics: picks the right way up of two readings."""
        return max(0.0, self.confidence - 0.3) * sum(ch.isalnum() for ch in self.text)


def _line_crops(gray: Image.Image, region: TextRegion, upright: int | None = None) -> list[Image.Image]:
    """The region padded, scaled to LINE_HEIGHT, in both candidate turns, or in
    the one ``upright`` (CCW quarter turns) names when it runs the line's way."""
    x0, y0, x1, y1 = region.box
    across = (x1 - x0) if region.vertical else (y1 - y0)
    pad = max(2, across // 3)
    crop = gray.crop((x0 - pad, y0 - pad, x1 + pad, y1 + pad))
    turns: tuple[int, ...] = (90, 270) if region.vertical else (0, 180)
    if upright is not None and 90 * (upright % 4) in turns:
        turns = (90 * (upright % 4),)
    out = []
    for angle in turns:
        im = crop.rotate(angle, expand=True, fillcolor=255) if angle else crop
        scale = LINE_HEIGHT / max(1, im.height)
        w = max(8, min(800, round(im.width * scale)))
        out.append(im.resize((w, LINE_HEIGHT), Image.Resampling.BICUBIC))
    return out


def _tesseract_lines(crops: Sequence[Image.Image]) -> list[Reading]:
    """One tesseract call on all crops stacked; a Reading per crop."""
    from .ocr import MIN_WORD_CONF, tesseract_data

    gap = LINE_HEIGHT // 2
    width = max(c.width for c in crops) + 2 * gap
    sheet = Image.new("L", (width, gap + len(crops) * (LINE_HEIGHT + gap)), 255)
    for i, c in enumerate(crops):
        sheet.paste(c, (gap, gap + i * (LINE_HEIGHT + gap)))
    d = tesseract_data(sheet, "--psm 6", SHEET_TIMEOUT_S)  # OcrUnavailable when missing
    words: list[list[tuple[int, str, float]]] = [[] for _ in crops]
    for text, conf, x, y, h in zip(d["text"], d["conf"], d["left"], d["top"], d["height"]):
        text = text.strip()
        c = float(conf)
        if not text or c < MIN_WORD_CONF:
            continue
        row = (y + h / 2 - gap) // (LINE_HEIGHT + gap)
        if 0 <= row < len(crops):
            words[int(row)].append((x, text, c / 100.0))
    out = []
    for ws in words:
        ws.sort()
        text = " ".join(t for _, t, _ in ws)
        conf = sum(c for _, _, c in ws) / len(ws) if ws else 0.0
        out.append(Reading(text, conf, "tesseract"))
    return out


def best_reading(readings: Sequence[Reading]) -> Reading:
    return max(readings, key=lambda r: (r.weight, r.confidence))


def is_sure(r: Reading) -> bool:
    floor = TESSERACT_MIN_CONFIDENCE if r.engine == "tesseract" else PPOCR_MIN_CONFIDENCE
    return r.confidence >= floor and sum(ch.isalnum() for ch in r.text) >= 2


def read_regions(image: Image.Image, regions: Sequence[TextRegion], use_tesseract: bool = True,
                 use_ppocr: bool = True, upright: int | None = None) -> tuple[list[list[Reading]], dict[str, float]]:
    """Per region, the best reading of each engine used (tesseract, then PP-OCR).

    ``upright``: the quarter turn a whole-image read found beyond doubt
    (:attr:`.ocr.OcrResult.sure_turn`); lines running that way are read in
    that turn only, the others both ways up.
    """
    gray = ImageOps.autocontrast(image.convert("L"), cutoff=1)
    per_region = [_line_crops(gray, r, upright) for r in regions]
    crops = [c for cs in per_region for c in cs]
    bounds, at = [], 0
    for cs in per_region:
        bounds.append((at, at + len(cs)))
        at += len(cs)
    t0 = time.perf_counter()
    tess = _tesseract_lines(crops) if use_tesseract else []
    t1 = time.perf_counter()
    pp: list[Reading] = []
    if use_ppocr and ppocr.available():
        pp = [Reading(line.text, line.confidence, "ppocr") for line in ppocr.recognise_lines(crops)]
    t2 = time.perf_counter()
    out = []
    for a, b in bounds:
        per = [best_reading(tess[a:b])] if tess else []
        if pp:
            per.append(best_reading(pp[a:b]))
        out.append(per)
    return out, {"ocr_tesseract": (t1 - t0) * 1000, "ocr_ppocr": (t2 - t1) * 1000}
