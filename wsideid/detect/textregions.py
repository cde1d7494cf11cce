"""Cheap first stage: where an image holds text-like marks (numpy + PIL only).

The residual scan of kept images (thumbnail, overview, a macro with its
label blanked) must cost a fraction of a second and not flag tissue. OCR
on the whole image is what made it slow (four tesseract orientation
probes) and what read tissue texture as "words". A label, printed or
handwritten, is dark ink on a light, flat background: this module finds
such marks, groups them into lines, and scores each line by how much it
looks like writing. Only the lines found here are read (by tesseract and
PP-OCR, see :mod:`.residual`); a clean tissue thumbnail usually yields
none, so it costs one pass of image filters.

Why not PP-OCR's own detector here: its DB network peaks at 130-400 MB of
memory on a 480-960 px input, above the per-process budget, whereas these
filters stay within a few MB for a thumbnail.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from .findings import Box, overlap

WORK_LONG_SIDE = 1024  # the finder runs on at most this size (px, longest side)
INK_CONTRAST = 60  # grey levels an ink mark lies below its local background
PAPER_MIN = 170  # local background at least this light (label paper, glass)
CELL = 2  # px of the working image per cell of the connectivity grid
MIN_SCORE = 0.45
# Around a line of writing nearly every pixel is paper or ink; around dark
# specks in tissue most are tissue, neither (measured: labels >= 0.82 even
# degraded, H&E thumbnails <= 0.62).
MIN_CLEAN = 0.75  # lines scoring below this are not worth reading


@dataclass(frozen=True)
class TextRegion:
    """One line-like group of ink marks.

    ``box`` is in the caller's image pixels (right/bottom exclusive);
    ``vertical`` says the line runs top-to-bottom (a label turned 90 deg);
    ``score`` (0..1) is how writing-like it is: several marks, aligned, of
    character size, on a flat light background.
    """

    box: Box
    vertical: bool
    score: float
    marks: int


def _label_grid(mask: np.ndarray, max_extent: int) -> tuple[np.ndarray, int]:
    """4-connected components of ``mask`` up to ``max_extent`` cells across.

    Min-label propagation, vectorised, for ``max_extent`` rounds: enough for
    every component small enough to be a character. Labels of bigger blobs
    (tissue, rules, the image border) have not settled by then; any label
    that still touches a different label is such a blob and is zeroed.
    """
    h, w = mask.shape
    big = np.iinfo(np.int32).max
    lab = np.where(mask, np.arange(1, h * w + 1, dtype=np.int32).reshape(h, w), big)
    for _ in range(max_extent + 1):
        nxt = lab.copy()
        np.minimum(nxt[1:], lab[:-1], out=nxt[1:])
        np.minimum(nxt[:-1], lab[1:], out=nxt[:-1])
        np.minimum(nxt[:, 1:], lab[:, :-1], out=nxt[:, 1:])
        np.minimum(nxt[:, :-1], lab[:, 1:], out=nxt[:, :-1])
        nxt[~mask] = big
        if np.array_equal(nxt, lab):
            break
        lab = nxt
    unsettled = np.concatenate([
        lab[1:][(lab[1:] != lab[:-1]) & mask[1:] & mask[:-1]],
        lab[:-1][(lab[1:] != lab[:-1]) & mask[1:] & mask[:-1]],
        lab[:, 1:][(lab[:, 1:] != lab[:, :-1]) & mask[:, 1:] & mask[:, :-1]],
        lab[:, :-1][(lab[:, 1:] != lab[:, :-1]) & mask[:, 1:] & mask[:, :-1]],
    ])
    lab[~mask] = 0
    if unsettled.size:
        lab[np.isin(lab, unsettled)] = 0
    return lab, int((lab > 0).any())


def _components(mask: np.ndarray, max_extent: int) -> list[tuple[int, int, int, int, int]]:
    """(x0, y0, x1, y1, pixel count) of each small component of ``mask``."""
    labels, n = _label_grid(mask, max_extent)
    if n == 0:
        return []
    ys, xs = np.nonzero(labels)
    lab = labels[ys, xs]
    order = np.argsort(lab, kind="stable")
    lab, ys, xs = lab[order], ys[order], xs[order]
    cuts = np.flatnonzero(np.diff(lab)) + 1
    out = []
    for yy, xx in zip(np.split(ys, cuts), np.split(xs, cuts)):
        out.append((int(xx.min()), int(yy.min()), int(xx.max()) + 1, int(yy.max()) + 1, len(xx)))
    return out


def ink_map(gray: Image.Image, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """(ink mask, local background) of a greyscale image.

    The background is a grey closing (max then min filter) wider than a
    stroke: on paper it is the paper's level, and ink is what lies well
    below it. Tissue is not paper: its closing stays mid-grey, so its dark
    nuclei fail ``PAPER_MIN``.
    """
    g = np.asarray(gray, np.int16)
    b = _window(_window(g, radius, np.maximum), radius, np.minimum)
    return (b - g >= INK_CONTRAST) & (b >= PAPER_MIN), b


def _window(a: np.ndarray, r: int, op) -> np.ndarray:
    """Square (2r+1) max or min filter, separable, edges replicated."""
    for axis in (0, 1):
        p = np.pad(a, [(r, r) if ax == axis else (0, 0) for ax in (0, 1)], mode="edge")
        n = a.shape[axis]
        out = p.take(range(0, n), axis=axis)
        for k in range(1, 2 * r + 1):
            out = op(out, p.take(range(k, k + n), axis=axis))
        a = out
    return a


def find_text_regions(image: Image.Image, max_regions: int = 24) -> list[TextRegion]:
    """Line-like groups of ink marks on light ground, best first."""
    src_w, src_h = image.size
    scale = min(1.0, WORK_LONG_SIDE / max(src_w, src_h))
    gray = image.convert("L")
    if scale < 1.0:
        gray = gray.resize((max(1, round(src_w * scale)), max(1, round(src_h * scale))), Image.Resampling.BOX)
    radius = max(3, round(max(gray.size) / 160))
    ink, bg = ink_map(gray, radius)
    garr = np.asarray(gray, np.int16)
    h, w = ink.shape
    gh, gw = h // CELL, w // CELL
    if gh < 4 or gw < 4:
        return []
    cells = ink[: gh * CELL, : gw * CELL].reshape(gh, CELL, gw, CELL).any(axis=(1, 3))
    limit = _mark_limit(gw, gh)
    marks = [c for c in _components(cells, limit + limit // 2) if _mark_like(c, limit)]
    regions: list[TextRegion] = []
    for vertical in (False, True):
        for line in _lines(marks, vertical):
            region = _score_line(line, vertical, ink, bg, garr, scale)
            if region is not None and region.score >= MIN_SCORE:
                regions.append(region)
    regions = _drop_nested(regions)
    regions.sort(key=lambda r: -r.score)
    return regions[:max_regions]


def _mark_limit(gw: int, gh: int) -> int:
    """Largest character, in cells: a sixth of the shorter side, 12 to 40."""
    return max(12, min(40, min(gw, gh) // 6))


def _mark_like(c: tuple[int, int, int, int, int], limit: int) -> bool:
    """A character-sized blob: not a speck, not a long rule or the image border."""
    x0, y0, x1, y1, n = c
    cw, ch = x1 - x0, y1 - y0
    big = max(cw, ch)
    return 2 <= big <= limit and n >= 3 and n <= 0.9 * cw * ch + 2


def _lines(marks: list[tuple[int, int, int, int, int]], vertical: bool) -> list[list[tuple[int, int, int, int, int]]]:
    """Chains of marks of similar size along one axis, gaps under ~1.5 heights."""
    def axes(c):  # (along0, across0, along1, across1)
        return (c[1], c[0], c[3], c[2]) if vertical else (c[0], c[1], c[2], c[3])

    items = sorted(marks, key=lambda c: axes(c)[0])
    lines: list[list] = []
    open_: list[tuple[list, float, float, float]] = []  # members, centre, height, end
    for c in items:
        a0, b0, a1, b1 = axes(c)
        centre, height = (b0 + b1) / 2, b1 - b0
        best = None
        for i, (members, lc, lh, end) in enumerate(open_):
            if a0 - end > 1.6 * max(lh, height) + 1:
                continue
            if abs(centre - lc) < 0.5 * max(lh, height) and height < 2.5 * lh + 1 and lh < 2.5 * height + 1:
                best = i
                break
        if best is None:
            open_.append(([c], centre, float(height), float(a1)))
        else:
            members, lc, lh, end = open_[best]
            members.append(c)
            n = len(members)
            open_[best] = (members, lc + (centre - lc) / n, lh + (height - lh) / n, max(end, float(a1)))
    lines = [m for m, *_ in open_]
    return lines


def _score_line(line, vertical: bool, ink: np.ndarray, bg: np.ndarray, gray: np.ndarray, scale: float) -> TextRegion | None:
    """A line of marks as a TextRegion in source pixels, or None if it is no text."""
    if len(line) < 3:
        return None
    x0 = min(c[0] for c in line) * CELL
    y0 = min(c[1] for c in line) * CELL
    x1 = max(c[2] for c in line) * CELL
    y1 = max(c[3] for c in line) * CELL
    along, across = (y1 - y0, x1 - x0) if vertical else (x1 - x0, y1 - y0)
    if along < 2.0 * across or across < 4:
        return None
    heights = np.array([(c[2] - c[0]) if vertical else (c[3] - c[1]) for c in line], float)
    regularity = 1.0 - min(1.0, float(heights.std() / max(1.0, heights.mean())))
    pad = max(2, across // 3)
    ys, xs = slice(max(0, y0 - pad), y1 + pad), slice(max(0, x0 - pad), x1 + pad)
    paper = bg[ys, xs]
    flat = 1.0 - min(1.0, float(paper.std()) / 25.0)
    light = min(1.0, max(0.0, (float(np.median(paper)) - PAPER_MIN) / 50.0))
    fill = float(ink[y0:y1, x0:x1].mean())
    region_g = gray[ys, xs]
    region_ink = ink[ys, xs]
    clean = float(((region_g >= PAPER_MIN) | region_ink).mean())  # paper or ink, nothing between
    if clean < MIN_CLEAN:
        return None
    density = 1.0 if 0.08 <= fill <= 0.6 else 0.3
    count = min(1.0, len(line) / 6.0)
    score = (0.25 * count + 0.2 * regularity + 0.15 * flat + 0.15 * light + 0.25 * clean) * density
    if vertical:  # the score is the marks'; the box also holds the line's other ink
        y0, y1 = _grow(ink[:, x0:x1].any(axis=1), y0, y1, x1 - x0)
    else:
        x0, x1 = _grow(ink[y0:y1].any(axis=0), x0, x1, y1 - y0)
    inv = 1.0 / scale
    box = (int(x0 * inv), int(y0 * inv), int(np.ceil(x1 * inv)), int(np.ceil(y1 * inv)))
    return TextRegion(box, vertical, round(score, 3), len(line))


def _grow(profile: np.ndarray, a0: int, a1: int, across: int) -> tuple[int, int]:
    """Extend a line along its axis over ink within its band.

    Marks too big to pass as one character (touching letters merged into
    a word, a logo) are not in the chain, yet belong to the line: "PTH"
    before "-67132". Gaps up to ~1.2 line heights are crossed.
    """
    gap = max(2, int(1.2 * across))
    ink_at = np.flatnonzero(profile)
    while True:
        before = ink_at[(ink_at < a0) & (ink_at >= a0 - gap)]
        after = ink_at[(ink_at >= a1) & (ink_at < a1 + gap)]
        if not before.size and not after.size:
            return a0, a1
        if before.size:
            a0 = int(before.min())
        if after.size:
            a1 = int(after.max()) + 1


def _drop_nested(regions: list[TextRegion]) -> list[TextRegion]:
    """Of two regions that mostly overlap (a line seen both ways), keep the better."""
    regions = sorted(regions, key=lambda r: -r.score)
    kept: list[TextRegion] = []
    for r in regions:
        if all(overlap(r.box, k.box) < 0.5 for k in kept):
            kept.append(r)
    return kept
