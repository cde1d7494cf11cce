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
PAPER_MIN = 110  # local background at least this light (white, yellow or orange label paper)
PAPER_TOLERANCE = 24  # a pixel this close to its local background is paper
BIG_MARK_FACTOR = 4  # a second, coarser ink map finds marker pen strokes
CELL = 2  # px of the working image per cell of the connectivity grid
MIN_SCORE = 0.45  # lines scoring below this are not worth reading
# Around a line of writing nearly every pixel is paper or ink; around dark
# specks in tissue most are tissue, neither (measured: labels >= 0.82 even
# degraded, H&E thumbnails <= 0.62).
MIN_CLEAN = 0.75
# Median ground this much redder and bluer than green: H&E stain, not paper
# (CMU-1 measured 163,131,160); or this colourful and not warm: another stain.
EOSIN_RED, EOSIN_BLUE = 20, 12
STAIN_CHROMA = 60


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
    g8 = np.asarray(gray, np.uint8)  # max and min are exact on the 8-bit samples: half the memory
    b = _window(_window(g8, radius, np.maximum), radius, np.minimum).astype(np.int16)
    ink = (b - g8 >= INK_CONTRAST) & (b >= PAPER_MIN)
    return ink, b


def _window(a: np.ndarray, r: int, op) -> np.ndarray:
    """Square (2r+1) max or min filter, separable, edges replicated; ``op`` (np.maximum or
    np.minimum) applied in place over shifted views of one padded copy, so the filter holds
    two arrays of ``a``'s size, not one per shift (issue 14: the residual scan's memory runs
    beside the verification's)."""
    for axis in (0, 1):
        p = np.pad(a, [(r, r) if ax == axis else (0, 0) for ax in (0, 1)], mode="edge")
        n = a.shape[axis]
        shifted = (lambda k: p[k:k + n]) if axis == 0 else (lambda k: p[:, k:k + n])
        out = shifted(0).copy()
        for k in range(1, 2 * r + 1):
            op(out, shifted(k), out=out)
        a = out
    return a


def find_text_regions(image: Image.Image, max_regions: int = 24) -> list[TextRegion]:
    """Line-like groups of ink marks on light ground, best first.

    Two scales: the working size, and a quarter of it where strokes wider
    than the background window (a marker pen on a small label, "CMU-1" on
    CMU-1's label) become thin enough to find.
    """
    src_w, src_h = image.size
    scale = min(1.0, WORK_LONG_SIDE / max(src_w, src_h))
    gray = image.convert("L")
    if scale < 1.0:
        gray = gray.resize((max(1, round(src_w * scale)), max(1, round(src_h * scale))), Image.Resampling.BOX)
    regions = _find(gray, scale)
    f = BIG_MARK_FACTOR
    if min(gray.size) >= 16 * f:
        small = gray.resize((gray.width // f, gray.height // f), Image.Resampling.BOX)
        regions += _find(small, scale / f, cell=1, min_marks=4)
    regions = [r for r in _drop_nested(regions) if not _on_stain(image, r.box)]
    regions.sort(key=lambda r: -r.score)
    return regions[:max_regions]


def _on_stain(image: Image.Image, box: Box) -> bool:
    """Is the ground of ``box`` stained tissue, not label paper?

    Label stock is white, grey, cream, yellow or orange: either nearly
    grey, or warm (red >= green >= blue). Stained tissue is pink/purple
    (H&E: red and blue both above green) or blue (Giemsa, toluidine, a
    DICOM sample measured ~100,160,220). Dense nuclei on such ground line
    up like print; the ground gives them away. A strongly coloured pink,
    blue or green label stock would be taken for tissue too: its lines are
    then not found (a documented limit; printed PHI on white, cream,
    yellow or orange labels is the common case).
    """
    if image.mode != "RGB":
        return False
    crop = image.crop(box)
    crop.thumbnail((64, 64))
    px = np.asarray(crop, np.int16).reshape(-1, 3)
    r, g, b = (int(np.median(px[:, i])) for i in range(3))
    if r - g > EOSIN_RED and b - g > EOSIN_BLUE:
        return True
    warm = r >= g - 4 and g >= b - 4
    return max(r, g, b) - min(r, g, b) > STAIN_CHROMA and not warm


def _find(gray: Image.Image, scale: float, cell: int = CELL, min_marks: int = 3) -> list[TextRegion]:
    """Regions at one scale; ``scale`` maps this image back to the caller's.

    ``cell`` px of this image make one cell of the connectivity grid; a
    line needs ``min_marks`` marks (more at the coarse scale, where tissue
    blobs pass for big letters more easily).
    """
    radius = max(3, round(max(gray.size) / 160))
    ink, bg = ink_map(gray, radius)
    garr = np.asarray(gray, np.int16)
    h, w = ink.shape
    gh, gw = h // cell, w // cell
    if gh < 4 or gw < 4:
        return []
    cells = ink[: gh * cell, : gw * cell].reshape(gh, cell, gw, cell).any(axis=(1, 3))
    limit = _mark_limit(gw, gh)
    marks = [c for c in _components(cells, limit + limit // 2) if _mark_like(c, limit)]
    regions: list[TextRegion] = []
    for vertical in (False, True):
        for line in _lines(marks, vertical):
            regions += _score_split(line, vertical, min_marks, lambda ln, v=vertical: _score_line(
                ln, v, ink, bg, garr, scale, cell))
    return regions


def _score_split(line, vertical: bool, min_marks: int, score) -> list[TextRegion]:
    """A chain as one region, or, when it fails as a whole, its good words.

    A chain can pick up tissue next to a label (nuclei within a letter's
    gap of the first word): cut it at word gaps (> 0.6 mark heights),
    keep the runs of words that pass on their own, joined where they touch.
    """
    if len(line) < min_marks:
        return []
    region = score(line)
    if region is not None and region.score >= MIN_SCORE:
        return [region]
    a = 1 if vertical else 0
    ordered = sorted(line, key=lambda c: c[a])
    height = float(np.median([c[2 + (1 - a)] - c[1 - a] for c in ordered]))
    words, cur = [], [ordered[0]]
    for prev, c in zip(ordered, ordered[1:]):
        if c[a] - prev[a + 2] > 0.6 * height:
            words.append(cur)
            cur = []
        cur.append(c)
    words.append(cur)
    if len(words) < 2:
        return []
    good = [w for w in words if len(w) >= 2 and (r := score(w)) is not None and r.score >= MIN_SCORE]
    out: list[TextRegion] = []
    run: list = []
    for w in words + [None]:
        if w is not None and any(w is g for g in good):
            run += w
            continue
        if run:
            r = score(run)
            out += [r] if r is not None and r.score >= MIN_SCORE else []
            run = []
    return out


def _mark_limit(gw: int, gh: int) -> int:
    """Largest character, in cells: a quarter of the shorter side, 8 to 24.

    Bigger letters (a marker pen filling a small label) are the coarse
    pass's: a quarter-size copy sees them at a quarter of the size. The cap
    bounds the labelling rounds (the cost of the pass).
    """
    return max(8, min(24, min(gw, gh) // 4))


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
    closed: list[list] = []
    open_: list[tuple[list, float, float, float]] = []  # members, centre, height, end
    for c in items:
        a0, b0, a1, b1 = axes(c)
        centre, height = (b0 + b1) / 2, b1 - b0
        # a line whose end lies further back than any mark could bridge is done
        done = [ln for ln in open_ if a0 - ln[3] > 4.0 * ln[2] + 2]
        if done:
            closed += [ln[0] for ln in done]
            open_ = [ln for ln in open_ if a0 - ln[3] <= 4.0 * ln[2] + 2]
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
    return closed + [m for m, *_ in open_]


def _score_line(line, vertical: bool, ink: np.ndarray, bg: np.ndarray, gray: np.ndarray, scale: float,
                cell: int) -> TextRegion | None:
    """A line of marks as a TextRegion in source pixels, or None if it is no text."""
    if len(line) < 2:
        return None
    x0 = min(c[0] for c in line) * cell
    y0 = min(c[1] for c in line) * cell
    x1 = max(c[2] for c in line) * cell
    y1 = max(c[3] for c in line) * cell
    along, across = (y1 - y0, x1 - x0) if vertical else (x1 - x0, y1 - y0)
    if along < 2.0 * across or across < 4:
        return None
    heights = np.array([(c[2] - c[0]) if vertical else (c[3] - c[1]) for c in line], float)
    regularity = 1.0 - min(1.0, float(heights.std() / max(1.0, heights.mean())))
    pad = max(2, across // 3)
    ys, xs = slice(max(0, y0 - pad), y1 + pad), slice(max(0, x0 - pad), x1 + pad)
    paper = bg[ys, xs]
    flat = 1.0 - min(1.0, float(paper.std()) / 30.0)
    light = min(1.0, max(0.0, (float(np.median(paper)) - PAPER_MIN) / 80.0))
    fill = float(ink[y0:y1, x0:x1].mean())
    region_g = gray[ys, xs]
    region_ink = ink[ys, xs]
    clean = float(((region_g >= paper - PAPER_TOLERANCE) | region_ink).mean())  # paper or ink, nothing between
    if clean < MIN_CLEAN:
        return None
    density = 1.0 if 0.08 <= fill <= 0.6 else 0.3
    count = min(1.0, len(line) / 6.0)
    score = (0.25 * count + 0.2 * regularity + 0.15 * flat + 0.15 * light + 0.25 * clean) * density
    if vertical:  # the score is the marks'; the box also holds the line's other ink
        y0, y1 = _grow(_growable(ink[:, x0:x1], gray[:, x0:x1], bg[:, x0:x1], 1), y0, y1, x1 - x0)
    else:
        x0, x1 = _grow(_growable(ink[y0:y1], gray[y0:y1], bg[y0:y1], 0), x0, x1, y1 - y0)
    inv = 1.0 / scale
    box = (int(x0 * inv), int(y0 * inv), int(np.ceil(x1 * inv)), int(np.ceil(y1 * inv)))
    return TextRegion(box, vertical, round(score, 3), len(line))


def _growable(ink: np.ndarray, gray: np.ndarray, bg: np.ndarray, axis: int) -> np.ndarray:
    """Positions along a band that hold ink and nothing but paper besides."""
    paper_or_ink = (gray >= bg - PAPER_TOLERANCE) | ink
    return ink.any(axis=axis) & (paper_or_ink.mean(axis=axis) >= 0.9)


def _grow(profile: np.ndarray, a0: int, a1: int, across: int) -> tuple[int, int]:
    """Extend a line along its axis over ink within its band.

    Marks too big to pass as one character (touching letters merged into
    a word, a logo) are not in the chain, yet belong to the line: "PTH"
    before "-67132". Gaps up to ~1.2 line heights are crossed, and the
    line at most triples (a rule or an edge is not text).
    """
    gap = max(2, int(1.2 * across))
    ink_at = np.flatnonzero(profile)
    lo, hi = a0 - (a1 - a0), a1 + (a1 - a0)  # at most the line's own length each way
    ink_at = ink_at[(ink_at >= lo) & (ink_at < hi)]
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
    """Keep the better of two regions that mostly overlap (a line seen both
    ways), and drop a region that cuts across two or more better lines of
    the other direction (letters of stacked lines aligned in a column)."""
    regions = sorted(regions, key=lambda r: -r.score)
    kept: list[TextRegion] = []
    for r in regions:
        if any(overlap(r.box, k.box) >= 0.5 for k in kept):
            continue
        crossed = sum(1 for k in kept if k.vertical != r.vertical and _crosses(r.box, k.box))
        if crossed < 2:
            kept.append(r)
    return kept


def _crosses(a: Box, b: Box) -> bool:
    """Do the boxes intersect at all?"""
    return min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])
