"""Residual scan of kept images: text-region stage, both engines, unreadable-text.

Synthetic images are drawn here at test time (fonts other than the label
bench's); real thumbnails, macros and CMU-1's hand-written label come from
../shared/testdata and are skipped when absent.
"""
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

from wsideid.detect import ppocr
from wsideid.detect.findings import UNREADABLE, overlap
from wsideid.detect.residual import scan_kept_image
from wsideid.detect.scan import likely_turns, scan_image
from wsideid.detect.textregions import find_text_regions

from realdata import TESTDATA

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


def _font(size: int):
    try:
        return ImageFont.truetype(FONT, size)
    except OSError:
        return ImageFont.load_default(size)


def _printed(lines, size=(420, 160), font_px=26, turn=0) -> Image.Image:
    img = Image.new("RGB", size, (250, 248, 240))
    d = ImageDraw.Draw(img)
    for i, text in enumerate(lines):
        d.text((16, 12 + i * (font_px + 12)), text, fill=(15, 15, 15), font=_font(font_px))
    return img.rotate(turn, expand=True) if turn else img


def _tissue(size=(600, 450), seed=3) -> Image.Image:
    """H&E-like texture: pink stroma of uneven density, purple nuclei in
    clusters, white gaps (no flat ground anywhere, as in real tissue)."""
    import numpy as np
    from PIL import ImageFilter

    rng = np.random.default_rng(seed)
    w, h = size
    field = Image.fromarray(rng.integers(0, 255, (h // 8, w // 8), dtype=np.uint8)).resize(size, Image.BICUBIC)
    density = np.asarray(field.filter(ImageFilter.GaussianBlur(3)), np.float32) / 255.0
    fine = rng.normal(0, 18, (h, w))
    base = np.array([236, 170, 200], np.float32) - 70 * density[..., None] * np.array([0.3, 1.0, 0.6])
    arr = np.clip(base + fine[..., None], 0, 255).astype(np.uint8)
    img = Image.fromarray(arr)
    d = ImageDraw.Draw(img)
    for _ in range(2500):
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        if density[y, x] < 0.45:
            continue
        r = int(rng.integers(1, 4))
        d.ellipse((x - r, y - r, x + r, y + r), fill=(110, 60, 140))
    for _ in range(25):
        x, y, r = int(rng.integers(0, w)), int(rng.integers(0, h)), int(rng.integers(4, 14))
        d.ellipse((x - r, y - r, x + r, y + r), fill=(250, 250, 250))
    return img.filter(ImageFilter.GaussianBlur(0.6))


def _real(rel: str) -> Path:
    p = TESTDATA / rel
    if not p.exists():
        pytest.skip(f"test data {rel} not present")
    return p


def _associated(rel: str, name: str) -> Image.Image:
    import openslide

    slide = openslide.OpenSlide(str(_real(rel)))
    try:
        return slide.associated_images[name].convert("RGB")
    finally:
        slide.close()


def test_text_regions_find_printed_lines_with_boxes_in_image_coordinates():
    img = _printed(["S24-12345", "DOB 03/04/1971", "Block A1"])
    regions = find_text_regions(img)
    assert len(regions) >= 3
    for r in regions:
        assert 0 <= r.box[0] < r.box[2] <= img.width and 0 <= r.box[1] < r.box[3] <= img.height
    horizontal = [r for r in regions if not r.vertical]
    assert horizontal and horizontal[0].score > 0.7
    assert likely_turns(regions) == (0, 2)


def test_text_regions_see_turned_lines_as_vertical():
    img = _printed(["S24-12345", "DOB 03/04/1971", "Block A1"], turn=90)
    regions = find_text_regions(img)
    assert regions and all(r.vertical for r in regions[:3])
    assert likely_turns(regions) == (1, 3)


def test_text_regions_ignore_tissue_texture():
    assert find_text_regions(_tissue()) == []


def test_kept_image_with_printed_phi_is_flagged_where_it_is():
    tissue = _tissue((700, 500))
    label = _printed(["SP-24-91221", "DOB 1945-05-14"], size=(300, 90), font_px=24)
    tissue.paste(label, (380, 30))
    result = scan_kept_image(tissue, "thumbnail")
    cats = {fl.category for f in result.findings for fl in f.flags}
    assert {"accession", "date"} <= cats, [(f.value, f.reader) for f in result.findings]
    for f in result.findings:
        if f.flags:
            assert overlap(f.box, (380, 30, 680, 120)) > 0.8, f.box


def test_clean_tissue_kept_image_has_no_findings_and_skips_ocr():
    result = scan_kept_image(_tissue(), "thumbnail")
    assert result.findings == []
    assert "ocr_tesseract" not in result.timings_ms  # nothing text-like: no OCR at all


def test_scribble_nobody_can_read_is_unreadable_text():
    img = Image.new("RGB", (500, 200), "white")
    d = ImageDraw.Draw(img)
    import random

    rng = random.Random(5)
    for row in range(2):  # two lines of letter-sized loops and hooks
        x = 20
        while x < 440:
            y = 40 + row * 80
            w, h = rng.randint(12, 22), rng.randint(22, 34)
            d.arc((x, y, x + w, y + h), rng.randint(0, 180), rng.randint(200, 360), fill="black", width=3)
            d.line((x + w // 2, y, x + rng.randint(0, w), y + h), fill="black", width=3)
            x += w + rng.randint(4, 9)
    result = scan_kept_image(img, "macro")
    unread = [f for f in result.findings if any(fl.category == UNREADABLE for fl in f.flags)]
    assert unread, [(f.value, f.confidence, f.reader) for f in result.findings]
    assert result.has_phi  # on a kept image it sends the slide to review
    for f in unread:
        d = f.to_dict(include_values=False)
        assert d["box"] == list(f.box) and UNREADABLE in d["phi"] and "value" not in d


def test_ppocr_worker_reads_a_printed_line():
    line = _printed(["SP-24-91221"], size=(260, 50), font_px=30)
    (got,) = ppocr.recognise_lines([line])
    assert got.text.replace(" ", "") == "SP-24-91221" and got.confidence > 0.9


def test_second_engine_adds_findings_to_label_scan_without_losing_any():
    img = _printed(["Pt: OKONKWO", "MRN 47108697", "Sirius Red"], size=(360, 150), font_px=24, turn=180)
    one = scan_image(img, "label", second_engine=False)
    both = scan_image(img, "label", second_engine=True)
    cats = lambda r: {fl.category for f in r.findings for fl in f.flags}  # noqa: E731
    assert cats(one) <= cats(both)
    assert {"name", "mrn"} <= cats(both)


@pytest.mark.realdata
@pytest.mark.parametrize("rel", ["svs/CMU-1-Small-Region.svs", "svs/tcga-cr-7395-01a-01-ts1.svs"])
def test_real_tissue_thumbnails_are_clean(rel):
    result = scan_kept_image(_associated(rel, "thumbnail"), "thumbnail")
    assert not result.has_phi, [(f.value, f.reader, [x.category for x in f.flags]) for f in result.findings]


@pytest.mark.realdata
def test_handwritten_cmu1_label_on_a_kept_macro_is_flagged():
    """The hand-written CMU-1 label pasted on the real macro (as a macro
    whose label was not blanked would show it): found, and not clean."""
    macro = _associated("svs/CMU-1-Small-Region.svs", "macro")
    label = _associated("svs/CMU-1-Small-Region.svs", "label")
    label = label.resize((label.width * 380 // label.height, 380))
    macro.paste(label, (880, 25))
    result = scan_kept_image(macro, "macro", identifiers=["CMU-1"])
    cats = {fl.category for f in result.findings for fl in f.flags}
    assert cats & {UNREADABLE, "identifier"}, [(f.value, f.reader) for f in result.findings]
    hits = [f for f in result.findings if f.flags]
    assert all(overlap(f.box, (880, 25, 880 + label.width, 405)) > 0.8 for f in hits)


@pytest.mark.realdata
def test_real_ndpi_macro_label_read_by_the_residual_scan():
    result = scan_kept_image(_associated("ndpi/test3-TRITC-2-560.ndpi", "macro"), "macro")
    cats = {fl.category for f in result.findings for fl in f.flags}
    assert "accession" in cats  # HS12-15115, printed on the turned label


@pytest.mark.realdata
def test_real_dicom_level_of_blue_stained_tissue_is_clean():
    """The level region blanking left on wsi2dcm_jpeg.dcm (dense nuclei on a
    blue ground): once read as "name" by OCR of tissue; no finding now."""
    from wsideid.dicom.scanimage import instance_image

    img = instance_image(str(_real("dicom/wsi2dcm_jpeg.dcm")), 0)
    result = scan_kept_image(img, "level")
    assert not result.has_phi, [(f.value, f.reader, f.box) for f in result.findings]
