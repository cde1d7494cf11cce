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
