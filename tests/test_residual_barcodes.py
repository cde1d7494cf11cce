"""Barcodes on KEPT images (thumbnail, macro, reduced level: ``detect.residual``), read by their
own ladder (``barcodes.read_barcodes(kept=True)``, issue 14).

Such an image is a reduction of a large picture, so a code on it is small: the ladder's
always-run rungs include a 2x view, which finds a code of 1.2-1.6 px modules that the plain
whole-image readers miss, whatever the image's size (the label ladder only upscales images
under 700 px). Cost is measured by bench/bench_residual_codes.py, never asserted here."""

from __future__ import annotations

import pytest
from PIL import Image

from test_detect_barcodes import code_image, on_label
from wsideid.detect import barcodes
from wsideid.detect._geometry import full_view
from wsideid.detect.residual import scan_kept_image
from wsideid.synth import tissue

AT = (300, 200)


def _thumbnail_with_code(fmt: str, scale: float, turn: int = 0) -> Image.Image:
    """A 768x576 tissue image with a label holding a ``fmt`` code of 4 * ``scale`` px modules."""
    code = code_image("S24-40417", fmt, 4)
    label = on_label(code, size=(code.width + 80, code.height + 60)).convert("RGB")
    label = label.resize((round(label.width * scale), round(label.height * scale)), Image.Resampling.BOX)
    if turn:
        label = label.rotate(90 * turn, expand=True)
    img = Image.fromarray(tissue(768, 576, 3))
    img.paste(label, AT)
    return img


@pytest.mark.parametrize("scale", [0.3, 0.35, 0.4])
def test_a_small_code_on_a_thumbnail_is_found_by_the_always_run_rungs(scale):
    img = _thumbnail_with_code("DataMatrix", scale)
    gray = img.convert("L")
    plain = [h for r in (barcodes._ZX_LOCAL, barcodes._ZX_GLOBAL) for h in r(gray, full_view(gray))]
    assert plain == []  # what the old always-run rungs saw: nothing (the test can fail)
    hits = barcodes.read_barcodes(img, budget_s=0.0, kept=True)  # no budget: the core rungs only
    assert [(h.symbology, h.value) for h in hits] == [("DataMatrix", "S24-40417")]
    (hit,) = hits
    assert AT[0] <= hit.box[0] < hit.box[2] <= AT[0] + 200 and AT[1] <= hit.box[1] < hit.box[3] <= AT[1] + 200


@pytest.mark.parametrize("turn", [0, 1, 3])
def test_the_residual_scan_flags_a_turned_code_where_it_is(turn):
    result = scan_kept_image(_thumbnail_with_code("Code128", 0.4, turn), "thumbnail", ocr=False)
    codes = [f for f in result.findings if f.kind == "barcode"]
    assert [f.value for f in codes] == ["S24-40417"] and result.has_phi
    assert AT[0] - 2 <= codes[0].box[0] and AT[1] - 2 <= codes[0].box[1]


def test_upscaled_views_stay_within_their_pixel_bound():
    """An upscaled view is lowered to KEPT_VIEW_PIXELS (memory: the residual scan runs beside
    the copy); a 3x rung that would not go past the 2x one is not run; a thumbnail's 2x view
    is whole."""
    small, big = Image.new("L", (768, 576)), Image.new("L", (1280, 960))
    assert barcodes._upscaled(small, 2.0) == full_view(small, 2.0)
    for img in (small, big):
        for s in (2.0, 3.0):
            v = barcodes._upscaled(img, s)
            assert v is None or (v.crop == (0, 0, *img.size) and
                                 img.width * img.height * v.scale ** 2 <= barcodes.KEPT_VIEW_PIXELS * 1.001)
    assert 1.0 < barcodes._upscaled(big, 2.0).scale < 2.0 and barcodes._upscaled(big, 3.0) is None
    assert barcodes._upscaled(Image.new("L", (768, 262)), 3.0) == full_view(Image.new("L", (768, 262)), 3.0)


def test_clean_tissue_has_no_codes_on_the_kept_ladder():
    assert barcodes.read_barcodes(Image.fromarray(tissue(768, 576, 5)), budget_s=1.0, kept=True) == []
