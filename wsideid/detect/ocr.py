"""Text recognition on labels with tesseract, whatever way up they are.

Labels are often turned 90 deg on macros, and tesseract's orientation
detection fails on the few words a label holds. So every candidate quarter
turn is read with a sparse-text pass, the best turn (most confident
characters) is kept, and words are grouped into lines so that "LAST,
FIRST" or a split accession number is classified as one piece of text.
The turned copies are stacked on one sheet and read by ONE tesseract
call: each call pays ~0.1 s of process start and model load, which was
most of a label's OCR time when every turn was a call of its own.
"""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Sequence

from PIL import Image, ImageDraw, ImageOps

from ._geometry import Renders, View
from .errors import DetectorError, OcrUnavailable
from .findings import Box

# Tesseract's OpenMP threads make small images slower, not faster, and
# break the one-core budget; one thread unless the caller chose otherwise.
os.environ.setdefault("OMP_THREAD_LIMIT", "1")

READ_LONG_SIDE = 1000  # every turn is read at this size (px, longest side; small labels upscaled)
MAX_UPSCALE = 3.0
MIN_WORD_CONF = 10.0  # below this tesseract is reading noise, not text
SURE_TURN_MIN_SCORE = 5.0  # ~8 characters read at 0.9; see OcrResult.sure_turn
CALL_TIMEOUT_S = 10
# The probed turns are one crop at one scale turned: resized once (bicubic, ~1000 px) and
# turned, not resized per turn (four times on a handwritten label, whose turn stays unsure).
# Kept up to this many pixels (a view is at most ~1000 px on its longest side below 4000 px).
TURN_RENDER_CACHE_PIXELS = 4_000_000


@dataclass(frozen=True)
class Word:
    text: str
    box: Box  # input-image coordinates
    confidence: float  # 0..1


@dataclass
class Line:
    """Words read as one line; ``box`` is their union in input coordinates."""

    words: list[Word]

    @property
    def text(self) -> str:
        return " ".join(w.text for w in self.words)

    @property
    def box(self) -> Box:
        bs = [w.box for w in self.words]
        return (min(b[0] for b in bs), min(b[1] for b in bs), max(b[2] for b in bs), max(b[3] for b in bs))

    @property
    def confidence(self) -> float:
        return sum(w.confidence for w in self.words) / len(self.words)


@dataclass
class OcrResult:
    lines: list[Line]
    quarter_turns: int  # CCW turns that made the text upright
    score: float  # confident characters in the chosen reading
    timings_ms: dict[str, float] = field(default_factory=dict)
    turn_scores: dict[int, float] = field(default_factory=dict)  # every probed turn's score

    @property
    def sure_turn(self) -> int | None:
        """The upright turn when the probes leave no doubt, else None.

        "No doubt": the best turn read at least ``SURE_TURN_MIN_SCORE``
        confident characters and at least twice as many as any other turn
        (text upside down reads as junk at low confidence). A weak reading,
        handwriting mostly, stays undecided and callers try every turn.
        """
        return _sure(self.turn_scores, self.quarter_turns)

    @property
    def words(self) -> list[Word]:
        return [w for line in self.lines for w in line.words]


@lru_cache(maxsize=1)
def _check_tesseract() -> str:
    """The tesseract command, or OcrUnavailable when it is not installed.

    Only looked up, not run: ``tesseract --version`` cost a scan ~16 ms of CPU (a process
    start) and proved little (it answers without the language data a read needs). A
    tesseract that is installed but cannot run fails the first read instead, with the
    same OcrUnavailable (:func:`_tesseract_call`).
    """
    import pytesseract

    found = shutil.which(pytesseract.pytesseract.tesseract_cmd)
    if found is None:
        raise OcrUnavailable("tesseract is not installed (apt-get install tesseract-ocr tesseract-ocr-eng)")
    return found


def tesseract_version() -> str:
    """The tesseract version, or OcrUnavailable."""
    import pytesseract

    _check_tesseract()
    try:
        return str(pytesseract.get_tesseract_version())
    except Exception as exc:  # any failure to run it means: no OCR
        raise OcrUnavailable(f"tesseract cannot run: {type(exc).__name__}") from exc


def tesseract_data(img: Image.Image, config: str, timeout_s: float) -> dict:
    """pytesseract's word table of ``img`` (written as PNM, :func:`uncompressed`).

    Raises OcrUnavailable when tesseract is missing or fails (exits non-zero: its
    language data missing, a broken install), DetectorError when it hangs.
    """
    import pytesseract
    from pytesseract.pytesseract import file_to_dict, run_and_get_output

    _check_tesseract()
    try:
        # pytesseract.image_to_data's own steps, without its first step: a `tesseract --version`
        # process (~16 ms CPU, once per process) to refuse a tesseract older than 3.05 (no TSV).
        # Such a tesseract writes no .tsv here, and the missing file fails the call as an
        # OSError: OcrUnavailable, as before. The command line is image_to_data's.
        tsv = run_and_get_output(uncompressed(img), "tsv", None, f"-c tessedit_create_tsv=1 {config.strip()}", 0,
                                 timeout_s)
        return file_to_dict(tsv, "\t", -1)
    except pytesseract.TesseractNotFoundError as exc:  # an OSError
        raise OcrUnavailable("tesseract is not installed") from exc
    except (pytesseract.TesseractError, OSError) as exc:  # TesseractError is a RuntimeError: first
        raise OcrUnavailable(f"tesseract cannot run: {type(exc).__name__}") from exc
    except RuntimeError as exc:  # pytesseract's timeout
        raise DetectorError("OCR timed out on an image") from exc


def _scale_to(size: tuple[int, int], long_side: int) -> float:
    s = long_side / max(size)
    return min(MAX_UPSCALE, s) if s > 1 else max(s, 0.25)


def uncompressed(img: Image.Image) -> Image.Image:
    """``img`` marked to reach tesseract as a PNM file instead of pytesseract's default PNG.

    pytesseract writes the image to a temporary file in ``img.format`` (PNG when unset):
    deflating a stacked sheet (~800 x 2400 px) cost the scan ~26 ms of CPU and tesseract
    inflated it again, where a PGM/PPM is written in ~1 ms. Same pixels, same words
    (tesseract's TSV is byte-identical). Only for images made here for tesseract (the
    attribute is set on ``img`` itself).
    """
    img.format = "PPM"  # Pillow writes an L image as PGM, RGB as PPM
    return img


def _read_words(img: Image.Image, view: View, psm: int, timeout_s: float = CALL_TIMEOUT_S
                ) -> list[tuple[Word, tuple[float, float, float, float]]]:
    """Words of one tesseract call: (word in source coords, box in the view)."""
    d = tesseract_data(img, f"--psm {psm}", timeout_s)
    out = []
    for text, conf, x, y, w, h in zip(d["text"], d["conf"], d["left"], d["top"], d["width"], d["height"]):
        text = text.strip()
        c = float(conf)
        if not text or c < MIN_WORD_CONF or not any(ch.isalnum() for ch in text):
            continue
        vbox = (float(x), float(y), float(x + w), float(y + h))
        corners = [(vbox[0], vbox[1]), (vbox[2], vbox[3])]
        out.append((Word(text, view.box_to_source(corners), c / 100.0), vbox))
    return out


def _score(words: list[tuple[Word, tuple[float, float, float, float]]]) -> float:
    """Confident alphanumeric characters: favours long, sure readings.

    Each character counts by how far its word's confidence exceeds 0.3, so
    a weak but real reading (handwriting at ~0.5) still beats the noise
    tesseract produces on a wrongly turned label, without a hard cut-off
    that would score both as zero.
    """
    return sum(max(0.0, w.confidence - 0.3) * sum(ch.isalnum() for ch in w.text) for w, _ in words)


def _group_lines(words: list[tuple[Word, tuple[float, float, float, float]]]) -> list[Line]:
    """Rows of words sharing a vertical band in the upright view, split at wide gaps.

    Rows first, x order second: sorting by top alone interleaves a row's
    words when digits sit a pixel higher than letters.
    """
    rows: list[tuple[list[tuple[Word, tuple[float, float, float, float]]], list[float]]] = []
    for item in sorted(words, key=lambda t: (t[1][1] + t[1][3]) / 2):
        _, (x0, y0, x1, y1) = item
        centre, height = (y0 + y1) / 2, y1 - y0
        for members, row in rows:  # row = [mean centre, mean height]
            if abs(centre - row[0]) < 0.5 * max(height, row[1]) and height < 2 * row[1] and row[1] < 2 * height:
                members.append(item)
                n = len(members)
                row[0] += (centre - row[0]) / n
                row[1] += (height - row[1]) / n
                break
        else:
            rows.append(([item], [centre, height]))
    lines = []
    for members, _ in rows:
        members.sort(key=lambda t: t[1][0])
        height = sorted(b[3] - b[1] for _, b in members)[len(members) // 2]
        current = [members[0]]
        for prev, item in zip(members, members[1:]):
            if item[1][0] - prev[1][2] > 1.5 * height:
                lines.append(Line([w for w, _ in current]))
                current = []
            current.append(item)
        lines.append(Line([w for w, _ in current]))
    return lines


def recognise(image: Image.Image, region: Box | None = None, mask: Sequence[Box] = (),
              turns: Sequence[int] = (0, 1, 2, 3)) -> OcrResult:
    """Read the text in ``image`` (or in ``region`` of it), best orientation.

    ``turns`` are the quarter turns to probe: a caller that knows the
    lines' direction (:mod:`.textregions`) passes two, halving the cost.
    ``mask`` boxes (decoded barcodes) are painted white first: a code's
    modules read as junk "words" that dilute the orientation score and
    merge into neighbouring lines. Boxes are in ``image``'s coordinates.
    Raises OcrUnavailable when tesseract is missing, DetectorError when it
    hangs.
    """
    _check_tesseract()
    t0 = time.perf_counter()
    gray = ImageOps.autocontrast(image.convert("L"), cutoff=1)
    if mask:
        draw = ImageDraw.Draw(gray)
        for b in mask:
            draw.rectangle((b[0] - 2, b[1] - 2, b[2] + 2, b[3] + 2), fill=255)
    crop = region or (0, 0, *gray.size)
    size = (crop[2] - crop[0], crop[3] - crop[1])
    scale = _scale_to(size, READ_LONG_SIDE)
    views = Renders(gray, TURN_RENDER_CACHE_PIXELS)  # the turns of one resize (see there)
    probes = _probe(views, [View(crop, scale, k) for k in turns])
    best_score, best_k, words = max(probes, key=lambda p: (p[0], -p[1]))
    rest = [k for k in (0, 1, 2, 3) if k not in turns]
    if rest and _sure({k: sc for sc, k, _ in probes}, best_k) is None:
        # The caller's two turns gave no sure reading: its guess of the lines'
        # direction may be wrong (a small label's tight lines look like
        # columns to the region finder), so the other two are read as well.
        probes += _probe(views, [View(crop, scale, k) for k in rest])
        best_score, best_k, words = max(probes, key=lambda p: (p[0], -p[1]))
    t1 = time.perf_counter()
    return OcrResult(
        lines=_group_lines(words),
        quarter_turns=best_k,
        score=best_score,
        timings_ms={"ocr_read": (t1 - t0) * 1000},
        turn_scores={k: sc for sc, k, _ in probes},
    )


def _sure(turn_scores: dict[int, float], best: int) -> int | None:
    """``best`` when its score leaves no doubt (see OcrResult.sure_turn), else None."""
    if not turn_scores:
        return None
    top = turn_scores[best]
    if top >= SURE_TURN_MIN_SCORE and all(top >= 2 * v for k, v in turn_scores.items() if k != best):
        return best
    return None


def _probe(gray: Renders, views: Sequence[View]
           ) -> list[tuple[float, int, list[tuple[Word, tuple[float, float, float, float]]]]]:
    """(score, quarter turns, words) of each view of ``gray.source``, read in one tesseract call."""
    return [(_score(words), view.quarter_turns, words) for view, words in zip(views, _read_stacked(gray, views))]


def _read_stacked(gray: Renders, views: Sequence[View]
                  ) -> list[list[tuple[Word, tuple[float, float, float, float]]]]:
    """Each view's words, from one tesseract call on the views stacked top to bottom.

    A white band (at least 40 px, an eighth of the tallest view) separates the views so that
    no word or line spans two of them; a word is assigned to the view its
    centre lies in, and its box is made relative to that view again. The
    stacked views are turns of one image: the same histogram, so
    tesseract's global threshold is the one each view would get alone.
    """
    rendered = [gray.render(v) for v in views]
    gap = max(40, max(im.height for im in rendered) // 8)
    width = max(im.width for im in rendered)
    tops, y = [], gap
    for im in rendered:
        tops.append(y)
        y += im.height + gap
    sheet = Image.new("L", (width, y), 255)
    for im, top in zip(rendered, tops):
        sheet.paste(im, (0, top))
    sheet_view = View((0, 0, *sheet.size))
    out: list[list[tuple[Word, tuple[float, float, float, float]]]] = [[] for _ in views]
    # The limit only guards against a hang: one call now does the work of
    # one call per view, so it gets each view's limit (a loaded machine
    # timed out at 10 s for the whole sheet).
    words = _read_words(sheet, sheet_view, psm=11, timeout_s=CALL_TIMEOUT_S * (len(views) + 1))
    for word, (x0, y0, x1, y1) in words:
        centre = (y0 + y1) / 2
        for i, (im, top) in enumerate(zip(rendered, tops)):
            if top <= centre < top + im.height:
                vbox = (x0, max(0.0, y0 - top), min(float(im.width), x1), min(float(im.height), y1 - top))
                corners = [(vbox[0], vbox[1]), (vbox[2], vbox[3])]
                out[i].append((Word(word.text, views[i].box_to_source(corners), word.confidence), vbox))
                break
    return out
