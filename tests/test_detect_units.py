"""Unit tests of the detector plumbing: geometry, reports, loader, location."""
import numpy as np
import pytest
from PIL import Image

from wsideid.detect import Finding, PhiFlag, UnreadableImage, locate_label, ndpi_label_hint
from wsideid.detect._geometry import View, tiles
from wsideid.detect.errors import OcrUnavailable
from wsideid.errors import WsideidError
from wsideid.detect.scan import ScanResult, load_image_file


@pytest.mark.parametrize("k", [0, 1, 2, 3])
@pytest.mark.parametrize("scale", [0.5, 1.0, 2.0])
def test_view_maps_a_marked_pixel_back(k, scale):
    src = Image.new("L", (120, 80), 0)
    src.putpixel((30, 10), 255)
    view = View((10, 5, 110, 75), scale, k)
    out = view.render(src)
    arr = np.asarray(out)
    ys, xs = np.unravel_index(int(arr.argmax()), arr.shape)
    box = view.box_to_source([(xs, ys), (xs + 1, ys + 1)])
    assert box[0] - 2 <= 30 <= box[2] + 1 and box[1] - 2 <= 10 <= box[3] + 1


def test_tiles_overlap_and_cover():
    ts = tiles((300, 200), 2)
    assert ts[0][0] == 0 and ts[-1][2] == 300 and ts[-1][3] == 200
    assert ts[0][2] > ts[1][0]  # neighbours overlap


def test_finding_without_values_leaks_no_text():
    f = Finding("label", "text", "SMITH, JOHN 2024-03-05", (1, 2, 3, 4), 0.9, flags=[
        PhiFlag("name", (0, 11), "LAST, FIRST with a known name"), PhiFlag("date", (12, 22), "date written yyyy-mm-dd")])
    d = f.to_dict(include_values=False)
    assert "SMITH" not in repr(d) and "2024" not in repr(d)
    assert d["phi"] == ["date", "name"] and d["flag_count"] == 2
    full = f.to_dict(include_values=True)
    assert full["value"] == f.value and full["flags"][0]["text"] == "SMITH, JOHN"
    r = ScanResult("label", (10, 10), [f])
    assert r.has_phi and "SMITH" not in repr(r.to_dict(False))
    assert r.to_dict(False)["phi_categories"] == {"name": 1, "date": 1}


def test_loader_rejects_junk(tmp_path):
    bad = tmp_path / "x.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(UnreadableImage):
        load_image_file(bad)
    with pytest.raises(UnreadableImage):
        load_image_file(tmp_path / "missing.png")
    assert issubclass(UnreadableImage, WsideidError) and issubclass(OcrUnavailable, WsideidError)


def test_loader_reads_png_tiff(tmp_path):
    for ext in ("png", "tif", "jpg"):
        p = tmp_path / f"l.{ext}"
        Image.new("RGBA" if ext == "png" else "RGB", (20, 10), "red").save(p)
        im = load_image_file(p)
        assert im.size == (20, 10) and im.mode in ("RGB", "L")


def test_ocr_missing_tesseract_raises(monkeypatch):
    import pytesseract

    from wsideid.detect import ocr

    ocr._check_tesseract.cache_clear()
    monkeypatch.setattr(pytesseract.pytesseract, "tesseract_cmd", "/nonexistent/tesseract")
    try:
        with pytest.raises(OcrUnavailable, match="tesseract"):
            ocr.recognise(Image.new("L", (50, 20), 255))
    finally:
        ocr._check_tesseract.cache_clear()


def test_locate_label_orders_evidence():
    size = (1000, 400)
    # metadata wins
    assert locate_label(size, "aperio", (10, 0, 200, 400), []) == (10, 0, 200, 400)
    # an out-of-frame hint is ignored, vendor default used
    assert locate_label(size, "aperio", (900, 300, 1600, 900), []) == (0, 0, 300, 400)
    # findings on the right for an unknown vendor: grown to full height
    f = Finding("macro", "barcode", "X", (800, 150, 880, 230), 1.0, "DataMatrix")
    box = locate_label(size, "philips", None, [f])
    assert box[1] == 0 and box[3] == 400 and box[0] < 800 and box[2] > 880
    # unknown vendor, nothing found: unknown
    assert locate_label(size, "philips", None, []) is None


def test_ndpi_hint_requires_matching_frame():
    props = {"hamamatsu.roi.barcode.macro": "948,281,1253,682", "hamamatsu.roi.slide.macro": "68,279,1256,685"}
    assert ndpi_label_hint(props, (1188, 406)) == (3, 2, 308, 403)
    assert ndpi_label_hint(props, (2000, 800)) is None
    assert ndpi_label_hint({}, (1188, 406)) is None
