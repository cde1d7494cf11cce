"""Detectors on real labels, macros and DICOM LABEL pixels from ../shared/testdata.

These files were written by scanners or other projects, so they prove the
detectors work beyond our own synthetic labels. Skipped when absent.
"""
from pathlib import Path

import pytest

from wsideid.detect import locate_label, ndpi_label_hint, scan_image
from wsideid.detect.scan import load_image_file

TESTDATA = Path(__file__).resolve().parents[2] / "shared" / "testdata"
pytestmark = pytest.mark.realdata


def data(rel: str) -> Path:
    p = TESTDATA / rel
    if not p.exists():
        pytest.skip(f"test data {rel} not present")
    return p


def barcodes(result):
    return {(f.symbology, f.value) for f in result.findings if f.kind == "barcode"}


@pytest.mark.parametrize(
    "rel, expected",
    [
        ("labels/mi_barcode_datamatrix.jpeg", ("DataMatrix", "123455b45GR4")),
        ("labels/mi_barcode_datamatrix_cropped.jpg", ("DataMatrix", "123455b45GR4")),
        ("labels/mi_barcode_wikipedia_pdf417.png", ("PDF417", "Wikipedia")),
        ("labels/mi_barcode_cant_read.jpg", ("EAN13", "4210201129820")),
    ],
)
def test_label_files_decode(rel, expected):
    img = load_image_file(data(rel))
    result = scan_image(img, "label", ocr=False)
    assert expected in barcodes(result)
    assert result.has_phi  # any barcode on a slide image is flagged
    (f,) = [f for f in result.findings if f.value == expected[1]]
    x0, y0, x1, y1 = f.box
    assert 0 <= x0 < x1 <= img.width and 0 <= y0 < y1 <= img.height


def test_datamatrix_box_is_where_the_code_is():
    img = load_image_file(data("labels/mi_barcode_datamatrix.jpeg"))
    (f,) = scan_image(img, "label", ocr=False).findings
    # The code occupies about x 101-196, y 64-159 of the 300x185 frame.
    assert abs(f.box[0] - 101) <= 4 and abs(f.box[2] - 196) <= 4
    assert abs(f.box[1] - 64) <= 4 and abs(f.box[3] - 159) <= 4


def test_dicom_label_instance_pixels_decode():
    pydicom = pytest.importorskip("pydicom")
    from PIL import Image

    ds = pydicom.dcmread(data("dicom/mi_test_wsi_label_barcodevalue.dcm"))
    # pydicom.pixels.pixel_array, not ds.pixel_array: importing wsidicomizer (an earlier test
    # that converts) switches pydicom to its v4 "future" mode for the whole process, where the
    # dataset method is gone; the function works in both modes and converts YBR_FULL_422 to RGB
    from pydicom.pixels import pixel_array
    img = Image.fromarray(pixel_array(ds))
    result = scan_image(img, "label", identifiers=[str(ds.BarcodeValue)], ocr=False)
    # The pixels hold a PDF417 of "Wikipedia", not the BarcodeValue tag (CBF-1234).
    assert barcodes(result) == {("PDF417", "Wikipedia")}
    assert not any(fl.category == "identifier" for f in result.findings for fl in f.flags)


def _openslide_image(rel: str, name: str):
    openslide = pytest.importorskip("openslide")
    slide = openslide.OpenSlide(str(data(rel)))
    try:
        return slide.associated_images[name].convert("RGB"), dict(slide.properties)
    finally:
        slide.close()


def test_svs_handwritten_label_matches_identifier():
    img, _ = _openslide_image("svs/CMU-1-Small-Region.svs", "label")
    result = scan_image(img, "label", identifiers=["CMU-1"])
    assert not barcodes(result)
    flagged = [f for f in result.findings if any(fl.category == "identifier" for fl in f.flags)]
    assert flagged, [f.value for f in result.findings]
    assert result.has_phi


def test_ndpi_macro_printed_label_is_flagged():
    img, props = _openslide_image("ndpi/test3-TRITC-2-560.ndpi", "macro")
    result = scan_image(img, "macro", identifiers=["HS12-15115"])
    cats = {fl.category for f in result.findings for fl in f.flags}
    assert {"identifier", "accession"} <= cats
    (hit,) = [f for f in result.findings if any(fl.category == "identifier" for fl in f.flags)]
    # The rotated label is on the left ~300 px of the 1188 px macro.
    assert hit.box[2] <= 320


def test_ndpi_label_location_from_metadata_and_findings():
    img, props = _openslide_image("ndpi/test3-TRITC-2-560.ndpi", "macro")
    hint = ndpi_label_hint(props, img.size)
    assert hint is not None
    assert hint[0] <= 5 and 295 <= hint[2] <= 320 and hint[3] - hint[1] >= 390
    assert locate_label(img.size, "hamamatsu", hint, []) == hint
    result = scan_image(img, "macro", identifiers=["HS12-15115"], ocr_region=hint)
    assert result.has_phi
    from_findings = locate_label(img.size, "hamamatsu", None, result.findings)
    assert from_findings is not None and from_findings[0] == 0 and 280 <= from_findings[2] <= 420


def test_svs_macro_default_label_region_covers_label():
    img, _ = _openslide_image("svs/CMU-1-Small-Region.svs", "macro")
    box = locate_label(img.size, "aperio", None, [])
    # The label (dark block at x ~150-280) lies inside the default box.
    assert box == (0, 0, 384, 431)
