"""Orientation paths of the label scan: every turn read in one tesseract call,
and PP-OCR reading one turn only where tesseract's probes leave no doubt."""
from __future__ import annotations

import shutil

import pytest
from PIL import Image, ImageDraw, ImageFont

from wsideid.detect import ocr
from wsideid.detect.lines import _line_crops
from wsideid.detect.ocr import OcrResult
from wsideid.detect.textregions import TextRegion

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


def _label(text: str, turn: int) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """A printed line on label paper, turned ``turn`` degrees CCW, and the text's box in it."""
    img = Image.new("L", (420, 90), 250)
    d = ImageDraw.Draw(img)
    font = ImageFont.truetype(FONT, 28)
    d.text((20, 25), text, fill=15, font=font)
    x0, y0, x1, y1 = d.textbbox((20, 25), text, font=font)
    if turn == 180:
        w, h = img.size
        return img.rotate(180), (w - x1, h - y1, w - x0, h - y0)
    return img, (x0, y0, x1, y1)


def test_sure_turn_needs_a_clear_margin():
    def res(scores, best):
        return OcrResult([], best, scores[best], {}, scores)
    assert res({0: 20.0, 2: 3.0}, 0).sure_turn == 0
    assert res({0: 2.0, 2: 20.0}, 2).sure_turn == 2
    assert res({0: 20.0, 2: 12.0}, 0).sure_turn is None  # no clear winner: both ways
    assert res({0: 4.0, 2: 0.0}, 0).sure_turn is None  # too little read to be sure
    assert OcrResult([], 0, 0.0).sure_turn is None


def test_line_crops_one_turn_only_when_upright_runs_the_lines_way():
    gray = Image.new("L", (300, 100), 255)
    across = TextRegion((20, 40, 200, 60), False, 0.9, 6)
    down = TextRegion((40, 10, 60, 90), True, 0.9, 6)
    assert len(_line_crops(gray, across)) == 2
    assert len(_line_crops(gray, across, upright=2)) == 1
    assert len(_line_crops(gray, across, upright=1)) == 2  # upright names the other direction
    assert len(_line_crops(gray, down, upright=3)) == 1
    (crop,) = _line_crops(gray, across, upright=0)
    assert crop.height == 40 and crop.width > crop.height


@pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract not installed")
@pytest.mark.parametrize("turn", [0, 180])
def test_stacked_read_picks_the_turn_and_maps_boxes_back(turn):
    """One call reads both turns; the upright one wins and its words' boxes lie on the text."""
    img, box = _label("MRN 47108697", turn)
    res = ocr.recognise(img, turns=(0, 2))
    assert res.quarter_turns == (2 if turn == 180 else 0)
    assert set(res.turn_scores) == {0, 2}
    assert res.sure_turn == res.quarter_turns
    (line,) = [ln for ln in res.lines if "47108697" in ln.text.replace(" ", "")]
    lb = line.box
    assert lb[0] >= box[0] - 6 and lb[1] >= box[1] - 6 and lb[2] <= box[2] + 6 and lb[3] <= box[3] + 6
    assert (lb[2] - lb[0]) > 0.5 * (box[2] - box[0])


@pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract not installed")
def test_wrong_guess_of_the_lines_direction_reads_the_other_turns_too():
    """The region finder took a small label's tight lines for columns and the scan
    probed (1, 3) only: the label read as junk and every PHI line was missed. With no
    sure reading in the guessed turns, the other two are read as well."""
    img, _ = _label("MRN 47108697", 0)
    res = ocr.recognise(img, turns=(1, 3))
    assert set(res.turn_scores) == {0, 1, 2, 3}
    assert res.quarter_turns == 0
    assert any("47108697" in ln.text.replace(" ", "") for ln in res.lines)


@pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract not installed")
def test_a_sure_guess_reads_two_turns_only():
    img, _ = _label("MRN 47108697", 0)
    assert set(ocr.recognise(img, turns=(0, 2)).turn_scores) == {0, 2}


@pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract not installed")
def test_the_turns_are_one_resize_and_read_the_same_words(monkeypatch):
    """Issue 14 (a scan process <= 0.6 CPU s): the four probed turns of a label whose turn
    stays unsure (handwriting) were four bicubic resizes of the same crop to ~1000 px; now
    one, turned. The sheet tesseract reads holds the same pixels: the same words, boxes and
    confidences as with nothing kept (every view rendered afresh, as before)."""
    img = Image.new("L", (415, 300), 245)
    d = ImageDraw.Draw(img)
    for i, t in enumerate(("Ki-67 Block A1", "MRN 47108697", "Reticulin")):
        d.text((20, 30 + 80 * i), t, fill=30, font=ImageFont.truetype(FONT, 30))
    calls = []
    real = Image.Image.resize
    monkeypatch.setattr(Image.Image, "resize", lambda self, *a, **k: calls.append(a[0]) or real(self, *a, **k))
    kept = ocr.recognise(img, turns=(0, 1, 2, 3))
    assert len(calls) == 1
    monkeypatch.setattr(ocr, "TURN_RENDER_CACHE_PIXELS", 0)
    afresh = ocr.recognise(img, turns=(0, 1, 2, 3))
    assert len(calls) == 1 + 4
    assert [(ln.text, ln.box, ln.confidence) for ln in kept.lines] == \
        [(ln.text, ln.box, ln.confidence) for ln in afresh.lines]
    assert kept.turn_scores == afresh.turn_scores and kept.quarter_turns == afresh.quarter_turns == 0
    assert "47108697" in " ".join(ln.text for ln in kept.lines)
