"""Barcode ladder on generated codes: small, turned, blurred, several symbologies."""
import numpy as np
import pytest
import zxingcpp
from PIL import Image, ImageFilter

from wsideid.detect.barcodes import read_barcodes


def code_image(value: str, fmt: str, module_px: int) -> Image.Image:
    code = zxingcpp.create_barcode(value, getattr(zxingcpp.BarcodeFormat, fmt))
    img = Image.fromarray(np.asarray(code.to_image(scale=1, add_quiet_zones=True)))
    h = img.height * module_px if fmt != "Code128" else 60
    return img.resize((img.width * module_px, h), Image.Resampling.NEAREST)


def on_label(code: Image.Image, size=(420, 260), at=(40, 30)) -> Image.Image:
    label = Image.new("L", size, 240)
    label.paste(code, at)
    return label


@pytest.mark.parametrize("fmt", ["DataMatrix", "QRCode", "Code128", "PDF417", "Aztec"])
@pytest.mark.parametrize("turn", [0, 1, 2, 3])
def test_symbologies_in_any_quarter_turn(fmt, turn):
    img = on_label(code_image("S24-12345", fmt, 3), size=(700, 300))
    if turn:
        img = img.rotate(90 * turn, expand=True)
    hits = read_barcodes(img)
    assert [(h.symbology, h.value) for h in hits] == [(fmt, "S24-12345")]


def test_small_blurred_code_on_low_res_label_is_upscaled():
    code = code_image("SP-24-1234", "DataMatrix", 5)
    img = on_label(code).resize((168, 104), Image.Resampling.BILINEAR)  # 2 px modules
    img = img.filter(ImageFilter.GaussianBlur(0.7))
    (hit,) = read_barcodes(img)
    assert hit.value == "SP-24-1234"
    # the box is in the small image's coordinates, around the code (at 16,12)
    assert 10 <= hit.box[0] <= 24 and hit.box[2] <= 168


def test_two_codes_and_dedup():
    img = Image.new("L", (900, 300), 255)
    img.paste(code_image("A-1", "QRCode", 4), (20, 20))
    img.paste(code_image("B-2", "Code128", 3), (300, 60))
    img.paste(code_image("A-1", "QRCode", 4), (700, 150))  # same code twice -> one finding
    values = sorted(h.value for h in read_barcodes(img))
    assert values == ["A-1", "B-2"]


def test_blank_image_has_no_codes():
    # speed is measured by bench/labels, never asserted in a test (machine load varies)
    assert read_barcodes(Image.new("RGB", (1200, 800), "white")) == []


def test_zxing_only_mode_still_reads_datamatrix():
    img = on_label(code_image("X9-0001", "DataMatrix", 4))
    assert [h.reader for h in read_barcodes(img, use_pyzbar=False)] == ["zxing"]


def test_a_linear_code_on_a_sliver_is_text_not_a_code():
    """zxing-cpp 3.1 read a serif line of text, sharpened at 3x, as an EAN-13 whose box was
    201 x 1 px (label bench, printed_0076): no printed 1D code is that thin."""
    from wsideid.detect.barcodes import BarcodeHit, _plausible
    assert not _plausible(BarcodeHit("EAN13", "9483282673758", (22, 30, 223, 31), "zxing"))
    assert not _plausible(BarcodeHit("Code128", "X", (10, 10, 12, 300), "pyzbar"))  # turned
    assert _plausible(BarcodeHit("Code128", "X", (0, 0, 470, 38), "zxing"))  # the bench's thinnest true box
    assert _plausible(BarcodeHit("DataMatrix", "X", (22, 30, 223, 31), "zxing"))  # 2D: not judged so


def test_a_short_real_code128_is_still_read():
    code = code_image("S24-12345", "Code128", 2)
    code = code.resize((code.width, max(8, code.width // 12)), Image.Resampling.NEAREST)  # bars 1/12 of the length
    hits = read_barcodes(on_label(code, size=(max(420, code.width + 80), 200)))
    assert [(h.symbology, h.value) for h in hits] == [("Code128", "S24-12345")]


def test_the_ladder_goes_on_past_a_sliver(monkeypatch):
    """A rung whose only hit is a sliver does not stop the ladder: a later rung's real code is read."""
    from wsideid.detect import barcodes
    real = barcodes._ZX_LOCAL

    def sliver_first(img, view):
        return [barcodes.BarcodeHit("EAN13", "9483282673758", (22, 30, 223, 31), "zxing")]

    monkeypatch.setattr(barcodes, "_ZX_LOCAL", sliver_first)
    monkeypatch.setattr(barcodes, "_ZX_GLOBAL", real)  # the other binariser's rung reads for real
    img = on_label(code_image("S24-12345", "DataMatrix", 4))
    hits = read_barcodes(img)
    assert [(h.symbology, h.value) for h in hits] == [("DataMatrix", "S24-12345")]


def _handwriting_like(size=(415, 402)) -> Image.Image:
    """A label with strokes and no code: the ladder runs every rung (the handwritten set)."""
    from PIL import ImageDraw

    img = Image.new("L", size, 235)
    draw = ImageDraw.Draw(img)
    for i in range(12):
        y = 30 + 28 * i
        draw.line([(20 + 7 * (j % 5), y + (j * 37) % 11) for j in range(0, 60, 3)], fill=40, width=2)
        draw.text((30, y), f"Smith J {i}x", fill=20)
    return img.filter(ImageFilter.GaussianBlur(0.6))


def test_the_label_ladder_resizes_each_crop_once_and_reads_the_same_pixels(monkeypatch):
    """Issue 14 (a `wsideid scan` process <= 0.6 CPU s): on a label with no code every rung
    runs, and the same 2x view (plain, sharpened, turned) and the same 2x2 crops were resized
    again in later rungs: 25 resizes where 14 differ. Each is made once now, and every view
    the ladder reads holds exactly ``View.render``'s pixels."""
    from wsideid.detect import barcodes

    img = _handwriting_like()
    gray = img.convert("L")
    views = [v for rung in barcodes._ladder(gray, True) for _, v in rung]
    distinct = {(v.crop, v.scale) for v in views if v.scale != 1.0}
    assert len(distinct) == 14 and len([v for v in views if v.scale != 1.0]) == 26  # 25 renders before
    renders = barcodes.Renders(gray, barcodes.LABEL_RENDER_CACHE_PIXELS)
    for v in views:
        assert renders.render(v).tobytes() == v.render(gray).tobytes(), v

    calls = []
    real = Image.Image.resize
    monkeypatch.setattr(Image.Image, "resize", lambda self, *a, **k: calls.append(a[0]) or real(self, *a, **k))
    assert read_barcodes(img) == []
    assert len(calls) == len(distinct)


def test_a_kept_image_ladder_keeps_no_render():
    """A kept image's views are large (a 768 px thumbnail at 2x: 2.4 MP) and the residual scan
    runs beside the copy under the 100 MB budget: its ladder keeps none of them."""
    from wsideid.detect import barcodes

    gray = _handwriting_like((768, 600))
    renders = barcodes.Renders(gray, 0)
    up = barcodes.full_view(gray, 2.0)
    renders.render(up)
    renders.render(up)
    assert renders.made == 2 and not renders.kept
